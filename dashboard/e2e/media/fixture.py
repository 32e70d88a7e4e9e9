#!/usr/bin/env python3
"""A MediaMTX stand-in for the dashboard's browser tests: real WebRTC (WHEP) and real HLS from one
RTSP test camera, behind the same JWT check as MediaMTX v1.20.1 with `authMethod: jwt`.

Usage (inside the venv of requirements.txt beside this file):

    fixture.py --source rtsp://127.0.0.1:8554/stream \\
        --jwks-url http://127.0.0.1:7450/.well-known/jwks.json \\
        --whep-port 8889 --hls-port 8888 --control-port 8890 [--issuer opennvr] [--audience mediamtx]
        [--jwt-in-query] [--auth-fail-delay 4]

Prints one line "ready" on stdout once the three listeners are up, the camera's first keyframe has
arrived (WHEP viewers get video at once) and ffmpeg has written the first HLS playlist with a segment.
Runs until SIGTERM or SIGINT (closes every peer connection, stops ffmpeg, exits 0); exits 1 when the
camera or ffmpeg stops on its own. One log line per HTTP request on stderr (no tokens, no queries).

Every path name `opennvr-<32 hex>` is configured and shows the same camera; any other name answers
as an unconfigured path does in MediaMTX. The token check is per requested path.

Viewer tokens, as MediaMTX's auth manager checks them (internal/auth/manager.go, golang-jwt v5):
- taken from `Authorization: Bearer <jwt>` (or the password of `Bearer user:pass` / Basic auth);
  from the query (`?token=`, legacy `?jwt=`) only with --jwt-in-query, i.e. `authJWTInHTTPQuery: true`
  (MediaMTX >= 1.18 and OpenNVR's docker/mediamtx.yml leave it off);
- alg EdDSA, verified with the JWKS key of the header's `kid` (all keys when there is no `kid`);
  the JWKS is fetched on start and again whenever a token names an unknown `kid` (MediaMTX itself
  re-fetches only hourly or on `POST /v3/auth/jwks/refresh`);
- `exp` (now < exp) and `nbf` (now >= nbf) when present, no leeway; `iat` is not checked;
  `aud` must contain --audience and `iss` must equal --issuer when those are set;
- `mediamtx_permissions` must be a list of {action, path} (nothing else) and hold action "read" with
  path equal to the requested one (empty path: any path; "~regex": a regular expression).
Refusals answer 401 {"status":"error","error":"authentication error"}; with no credentials at all it
also carries `WWW-Authenticate: Basic realm="mediamtx"`, otherwise it comes after a random delay of up
to --auth-fail-delay seconds (MediaMTX waits up to 4 s; default 0 here to keep tests fast).

WHEP (internal/servers/webrtc/http_server.go), http://127.0.0.1:<whep-port>/<path>/whep:
- OPTIONS preflight: 204 with Allow-Methods and Allow-Headers; every response has
  `Access-Control-Allow-Origin: *` (what MediaMTX >= 1.19.3 sends with the default allowOrigins ["*"];
  it no longer sends Access-Control-Allow-Credentials) and `Server: mediamtx`;
- POST: 400 for a Content-Type other than application/sdp, 400 for an unconfigured path, 401 for a
  refused token, then 201 with the complete SDP answer (no trickle), `Location:
  /<path>/whep/<secret>[?query]`, ETag, ID, Accept-Patch; the video is the camera's H.264 forwarded
  without re-encoding, each viewer starting at a keyframe;
- PATCH /<path>/whep/<secret>: 204 (candidates are not needed: the browser always has the
  fixture's candidates and the fixture learns the browser's from its connectivity checks);
  DELETE: closes the peer connection, 200; unknown secret 404, malformed 400; GET/HEAD/PUT 405.

HLS (internal/servers/hls/http_server.go), http://127.0.0.1:<hls-port>/<path>/index.m3u8, with the
session handshake of MediaMTX 1.20: a request without `cookieCheck=1` is redirected (302) to the same
URL with it; that one checks the token, opens a session and answers a multivariant playlist whose
URIs carry `session=<secret>` (plus the rest of the query); the media playlist, init section and
segments are then authorised by that session (401 without it; sessions end after 30 s unused), not
by the token. One ffmpeg copies the camera into fMP4 segments of 1 s for all paths (plain HLS, not
MediaMTX's default Low-Latency variant). Answers carry `Cache-Control: private, no-cache`.

Control (plain JSON, no auth, loopback), http://127.0.0.1:<control-port>:
- POST /freeze: no more frames to any WHEP viewer (connections stay up) and no more HLS segments
  (ffmpeg is paused with SIGSTOP; keep freezes well under a minute, the camera's RTSP session
  timeout); POST /thaw resumes (WHEP viewers at the next keyframe; ffmpeg catches up).
- POST /whep/refuse [{"status": 400, "error": "..."}]: later WHEP POSTs that pass the token check
  fail like MediaMTX does when it cannot serve the stream over WebRTC (default 400, "the stream
  doesn't contain any supported codec, ..."); POST /whep/accept undoes it.
- GET /stats: open WHEP sessions and answered WHEP POSTs per path, live HLS sessions and HLS
  files served (200s) per path, token refusals per protocol, HLS requests without a session.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import os
import posixpath
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote_plus

import aiohttp
import av
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Path names OpenNVR creates; every one of them is "configured" here and shows the camera.
PATH_NAME = re.compile(r"opennvr-[0-9a-f]{32}")
PERMISSION_ACTIONS = {"publish", "read", "playback", "api", "metrics", "pprof"}
# MediaMTX's message when a stream cannot be read over WebRTC (internal/protocols/webrtc/from_stream.go).
NO_WEBRTC_CODEC = (
    "the stream doesn't contain any supported codec, which are currently "
    "AV1, VP9, VP8, H265, H264, Opus, G722, G711, LPCM"
)
HLS_SESSION_TTL = 30.0  # seconds, MediaMTX's sessionCloseAfter
HANDSHAKE_TIMEOUT = 10.0  # seconds, MediaMTX's webrtcHandshakeTimeout
VIEWER_QUEUE = 30  # frames a WHEP viewer may lag behind before it skips to the next keyframe
READY_TIMEOUT = 30.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def json_response(status: int, body: dict, headers: dict | None = None) -> web.Response:
    """A JSON answer formatted as MediaMTX's (gin's) AbortWithStatusJSON."""
    return web.Response(
        status=status,
        text=json.dumps(body, separators=(",", ":")),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(status: int, message: str, headers: dict | None = None) -> web.Response:
    return json_response(status, {"status": "error", "error": message}, headers)


def page_not_found() -> web.Response:
    """What MediaMTX's HTTP servers answer for a route they do not handle."""
    return web.Response(status=404, text="404 page not found")


def not_configured(path: str) -> str:
    return f"path '{path}' is not configured"


# ---------------------------------------------------------------------------------------------
# Viewer tokens
# ---------------------------------------------------------------------------------------------


class AuthError(Exception):
    """A token MediaMTX would refuse; the message is for the log only."""


def b64url_decode(text: str) -> bytes:
    if "=" in text:
        raise AuthError("padded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise AuthError(f"bad base64url: {e}") from None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TokenVerifier:
    """Checks viewer JWTs against the server's JWKS (Ed25519 keys only, as OpenNVR publishes)."""

    def __init__(self, jwks_url: str, issuer: str, audience: str, http: aiohttp.ClientSession):
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.http = http
        self.keys: dict[str, tuple[Ed25519PublicKey, str]] = {}  # kid -> (key, JWK "alg" or "")
        self.loaded = False
        self.lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self.http.get(self.jwks_url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        keys = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                log(f"jwks: ignoring a key that is not Ed25519 (kid {jwk.get('kid')!r})")
                continue
            public = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
            keys[jwk.get("kid", "")] = (public, jwk.get("alg", ""))
        self.keys = keys
        self.loaded = True
        log(f"jwks: {len(keys)} key(s) from {self.jwks_url}: {sorted(keys)}")

    async def _refresh_for(self, kid: str | None) -> None:
        """Fetches the JWKS if it never loaded or `kid` is unknown (once, however many ask)."""
        async with self.lock:
            if self.loaded and (kid is None or kid in self.keys):
                return
            try:
                await self.refresh()
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as e:
                raise AuthError(f"cannot fetch the JWKS: {e}") from None

    async def verify(self, token: str, path: str) -> None:
        """Raises AuthError unless `token` lets its holder read `path`."""
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("not a JWS compact token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError as e:
            raise AuthError(f"bad JSON: {e}") from None
        signature = b64url_decode(parts[2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AuthError("header or claims not a JSON object")
        alg = header.get("alg")
        if alg != "EdDSA":
            raise AuthError(f"signing method {alg!r} is not EdDSA")
        permissions = self._permissions(claims)

        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("kid is not a string")
        await self._refresh_for(kid)
        if kid is None:
            candidates = [key for key, _ in self.keys.values()]
        elif kid in self.keys:
            key, jwk_alg = self.keys[kid]
            if jwk_alg and jwk_alg != alg:
                raise AuthError(f"JWK alg {jwk_alg!r} does not match token alg {alg!r}")
            candidates = [key]
        else:
            raise AuthError(f"no key with kid {kid!r} in the JWKS")
        signed = f"{parts[0]}.{parts[1]}".encode()
        for key in candidates:
            try:
                key.verify(signature, signed)
                break
            except InvalidSignature:
                continue
        else:
            raise AuthError("signature is invalid")

        now = time.time()
        if "exp" in claims and not now < int(claims["exp"]):
            raise AuthError("token is expired")
        if "nbf" in claims and now < int(claims["nbf"]):
            raise AuthError("token is not valid yet")
        if self.audience:
            audiences = claims.get("aud", [])
            audiences = [audiences] if isinstance(audiences, str) else audiences
            if self.audience not in audiences:
                raise AuthError("token has invalid audience")
        if self.issuer and claims.get("iss") != self.issuer:
            raise AuthError("token has invalid issuer")
        if not any(self._grants_read(permission, path) for permission in permissions):
            raise AuthError("user doesn't have permission to perform action")

    @staticmethod
    def _permissions(claims: dict) -> list[dict]:
        """The registered claims' types and the permission list, as strictly as MediaMTX reads them."""
        for name in ("exp", "nbf", "iat"):
            if name in claims and not is_number(claims[name]):
                raise AuthError(f"{name} is not a number")
        for name in ("iss", "sub", "jti"):
            if name in claims and not isinstance(claims[name], str):
                raise AuthError(f"{name} is not a string")
        aud = claims.get("aud", "")
        if not isinstance(aud, str) and not (isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
            raise AuthError("aud is neither a string nor a list of strings")
        if "mediamtx_permissions" not in claims:
            raise AuthError("claim 'mediamtx_permissions' not found inside JWT")
        permissions = claims["mediamtx_permissions"]
        if isinstance(permissions, str):  # MediaMTX also takes the list JSON-encoded in a string
            try:
                permissions = json.loads(permissions)
            except ValueError:
                raise AuthError("mediamtx_permissions is not a list") from None
        if not isinstance(permissions, list):
            raise AuthError("mediamtx_permissions is not a list")
        for permission in permissions:
            if not isinstance(permission, dict) or not set(permission) <= {"action", "path"}:
                raise AuthError(f"bad permission {permission!r}")
            if permission.get("action", "") not in PERMISSION_ACTIONS:
                raise AuthError(f"invalid auth action: {permission.get('action')!r}")
            if not isinstance(permission.get("path", ""), str):
                raise AuthError("permission path is not a string")
        return permissions

    @staticmethod
    def _grants_read(permission: dict, path: str) -> bool:
        if permission.get("action") != "read":
            return False
        allowed = permission.get("path", "")
        if allowed.startswith("~"):
            try:
                return re.search(allowed[1:], path) is not None
            except re.error:
                return False
        return allowed in ("", path)


def request_token(request: web.Request, from_query: bool) -> tuple[str, bool]:
    """The token a request presents and whether it presents any credentials (httpp.Credentials)."""
    user = password = token = ""
    bearers = [h for h in request.headers.getall("Authorization", []) if h.startswith("Bearer ")]
    if bearers:
        value = bearers[0][len("Bearer ") :]
        pair = value.split(":")
        if len(pair) == 2:
            user, password = pair
        else:
            token = value
    elif request.headers.get("Authorization", "").startswith("Basic "):
        try:
            decoded = base64.b64decode(request.headers["Authorization"][len("Basic ") :]).decode()
            user, _, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    token = token or password
    if not token and from_query:
        query = parse_qsl(request.query_string, keep_blank_values=True)
        for key in ("token", "jwt"):
            values = [v for k, v in query if k == key]
            if len(values) == 1:
                token = values[0]
                break
    return token, bool(user or password or token)


# ---------------------------------------------------------------------------------------------
# The camera, read once for every WHEP viewer
# ---------------------------------------------------------------------------------------------


class ViewerTrack(MediaStreamTrack):
    """One WHEP viewer's video: the camera's H.264 access units, starting at a keyframe."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.Packet] = asyncio.Queue(maxsize=VIEWER_QUEUE)
        self.wait_for_keyframe = True

    def offer(self, packet: av.Packet) -> None:
        if self.queue.full():  # the sender is not draining (not connected yet, or stuck)
            while not self.queue.empty():
                self.queue.get_nowait()
            self.wait_for_keyframe = True
        if self.wait_for_keyframe and not packet.is_keyframe:
            return
        self.wait_for_keyframe = False
        self.queue.put_nowait(packet)

    async def recv(self) -> av.Packet:
        # aiortc's H.264 sender packetizes an av.Packet as it is (H264Encoder.pack): no re-encoding.
        return await self.queue.get()


class Camera:
    """Demuxes the RTSP camera in a thread and fans its packets out to the WHEP viewers."""

    def __init__(self, source: str):
        self.source = source
        self.viewers: set[ViewerTrack] = set()
        self.frozen = False
        self.width = self.height = 0
        self.frame_rate: float | None = None
        self.parameter_sets = b""  # SPS and PPS from the RTSP session description, Annex B
        self.codecs = ""  # RFC 6381 codec string ("avc1.42c01f") once the first SPS is seen
        self.first_keyframe = asyncio.Event()
        self.ended = asyncio.Event()
        self.closing = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._demux, name="camera", daemon=True)

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread.start()

    async def close(self) -> None:
        self.closing = True
        await asyncio.to_thread(self.thread.join, 5)  # the next packet (100 ms at 10 fps) ends it

    def _demux(self) -> None:
        try:
            with av.open(self.source, options={"rtsp_transport": "tcp"}, timeout=10) as container:
                stream = container.streams.video[0]
                if stream.codec_context.name != "h264":
                    raise RuntimeError(f"the camera sends {stream.codec_context.name}, not H.264")
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
                rate = stream.average_rate or stream.guessed_rate
                self.frame_rate = float(rate) if rate else None
                self.parameter_sets = stream.codec_context.extradata or b""
                for packet in container.demux(stream):
                    if self.closing:
                        return
                    if packet.pts is not None:  # the flush packet at the end has none
                        self.loop.call_soon_threadsafe(self._deliver, packet)
            log(f"camera: {self.source} ended")
        except Exception as e:  # any failure ends the fixture: tests must not run on a dead camera
            log(f"camera: {self.source} failed: {e}")
        self.loop.call_soon_threadsafe(self.ended.set)

    def _deliver(self, packet: av.Packet) -> None:
        if not self.first_keyframe.is_set():
            if not packet.is_keyframe:
                return
            self.codecs = h264_codec_string(self.parameter_sets + bytes(packet))
            self.first_keyframe.set()
        if self.frozen:
            return
        for viewer in self.viewers:
            viewer.offer(packet)

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        for viewer in self.viewers:
            viewer.wait_for_keyframe = True
        self.frozen = False


def h264_codec_string(annex_b: bytes) -> str:
    """avc1.PPCCLL from the first SPS (NAL type 7) in Annex B data; "" without one."""
    for nal in annex_b.split(b"\x00\x00\x01")[1:]:
        if len(nal) >= 4 and nal[0] & 0x1F == 7:
            return f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
    return ""


# ---------------------------------------------------------------------------------------------
# The fixture: shared state, the token check, statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class WhepSession:
    path: str
    id: uuid.UUID
    pc: RTCPeerConnection
    track: ViewerTrack


@dataclass
class HlsSession:
    path: str
    ip: str
    last_request: float


@dataclass
class Stats:
    whep_answered: Counter = field(default_factory=Counter)  # 201s per path
    hls_served: Counter = field(default_factory=Counter)  # 200s per path
    refused_tokens: Counter = field(default_factory=Counter)  # 401s per protocol
    hls_without_session: int = 0  # media playlist or segment requests refused for lack of session


class Fixture:
    def __init__(self, args: argparse.Namespace, http: aiohttp.ClientSession):
        self.args = args
        self.verifier = TokenVerifier(args.jwks_url, args.issuer, args.audience, http)
        self.camera = Camera(args.source)
        self.hls_dir = tempfile.mkdtemp(prefix="opennvr-media-fixture-")
        self.ffmpeg: asyncio.subprocess.Process | None = None
        self.whep_sessions: dict[uuid.UUID, WhepSession] = {}  # by secret
        self.hls_sessions: dict[str, HlsSession] = {}  # by secret
        self.whep_refusal: tuple[int, str] | None = None
        self.stats = Stats()

    async def authorize(self, request: web.Request, path: str, protocol: str) -> web.Response | None:
        """None when the request's token lets it read `path`, else MediaMTX's 401 answer."""
        token, has_credentials = request_token(request, self.args.jwt_in_query)
        try:
            if not token:
                raise AuthError("JWT not provided")
            await self.verifier.verify(token, path)
            return None
        except AuthError as e:
            self.stats.refused_tokens[protocol] += 1
            log(f"{protocol}: refused a viewer of '{path}': {e}")
        if not has_credentials:
            return error_response(401, "authentication error", {"WWW-Authenticate": 'Basic realm="mediamtx"'})
        if self.args.auth_fail_delay > 0:
            await asyncio.sleep(random.uniform(0, self.args.auth_fail_delay))
        return error_response(401, "authentication error")

    # ----- WHEP -----

    async def whep(self, request: web.Request) -> web.Response:
        if match := re.fullmatch(r"/(.+?)/whep", request.path):
            if request.method == "POST":
                return await self.whep_post(request, match[1])
            if request.method == "OPTIONS":  # not a preflight: those never get here
                return await self.whep_options(request, match[1])
            if request.method in ("GET", "HEAD", "PUT"):
                return error_response(405, "method not allowed")
        elif (match := re.fullmatch(r"/(.+?)/whep/(.+?)", request.path)) and request.method in (
            "PATCH",
            "DELETE",
        ):
            return await self.whep_session_request(request, match[2])
        return page_not_found()

    async def whep_options(self, request: web.Request, path: str) -> web.Response:
        if not PATH_NAME.fullmatch(path):
            return error_response(500, not_configured(path))
        denied = await self.authorize(request, path, "whep")
        return denied or web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "OPTIONS, GET, POST, PATCH, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                "Access-Control-Expose-Headers": "Accept-Post, Link",
                "Accept-Post": "application/sdp",
            },
        )

    async def whep_session_request(self, request: web.Request, raw_secret: str) -> web.Response:
        """PATCH (trickle ICE) or DELETE on /<path>/whep/<secret>."""
        try:
            secret = uuid.UUID(raw_secret)
        except ValueError:
            return error_response(400, "invalid secret")
        if request.method == "PATCH" and request.content_type != "application/trickle-ice-sdpfrag":
            return error_response(400, "invalid Content-Type")
        session = self.whep_sessions.get(secret)
        if session is None:
            return error_response(404, "session not found")
        if request.method == "PATCH":
            return web.Response(status=204)
        await session.pc.close()
        self.end_whep_session(secret)
        return json_response(200, {"status": "ok"})

    async def whep_post(self, request: web.Request, path: str) -> web.Response:
        if request.content_type != "application/sdp":
            return error_response(400, "invalid Content-Type")
        offer = await request.text()
        if not PATH_NAME.fullmatch(path):
            return error_response(400, not_configured(path))
        denied = await self.authorize(request, path, "whep")
        if denied:
            return denied
        if self.whep_refusal:
            return error_response(*self.whep_refusal)

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: the network is closed
        track = ViewerTrack()
        transceiver = pc.addTransceiver(track, direction="sendonly")
        # Only H.264 (and its retransmissions), constrained baseline first: what the camera sends.
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/H264", "video/rtx")
        ]
        codecs.sort(key=lambda c: c.parameters.get("profile-level-id") != "42e01f")
        transceiver.setCodecPreferences(codecs)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if transceiver.mid is None:
                raise ValueError("the offer has no video media")
            await pc.setLocalDescription(await pc.createAnswer())  # gathers every candidate
        except Exception as e:  # aiortc raises several types for offers it cannot answer
            await pc.close()
            return error_response(400, f"cannot answer the offer: {e}")

        secret, session_id = uuid.uuid4(), uuid.uuid4()
        self.whep_sessions[secret] = WhepSession(path, session_id, pc, track)
        self.camera.viewers.add(track)
        self.stats.whep_answered[path] += 1

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log(f"whep: session {session_id} for '{path}' is {pc.connectionState}")
            if pc.connectionState in ("failed", "closed"):
                self.end_whep_session(secret)
                await pc.close()

        asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self.drop_unconnected, secret)

        location = f"/{path}/whep/{secret}"
        if request.query_string:
            location += "?" + request.query_string
        return web.Response(
            status=201,
            body=pc.localDescription.sdp.encode(),
            content_type="application/sdp",
            headers={
                "Access-Control-Expose-Headers": "ETag, ID, Accept-Patch, Link, Location",
                "ETag": "*",
                "ID": str(session_id),
                "Accept-Patch": "application/trickle-ice-sdpfrag",
                "Location": location,
            },
        )

    def drop_unconnected(self, secret: uuid.UUID) -> None:
        """Ends a session whose viewer never connected, as MediaMTX's webrtcHandshakeTimeout does."""
        session = self.whep_sessions.get(secret)
        if session and session.pc.connectionState in ("new", "connecting"):
            log(f"whep: session {session.id} for '{session.path}' did not connect in time")
            self.end_whep_session(secret)
            asyncio.ensure_future(session.pc.close())

    def end_whep_session(self, secret: uuid.UUID) -> None:
        session = self.whep_sessions.pop(secret, None)
        if session:
            self.camera.viewers.discard(session.track)

    # ----- HLS -----

    async def start_ffmpeg(self) -> None:
        self.ffmpeg = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            "-rtsp_transport", "tcp", "-i", self.args.source,
            "-map", "0:v:0", "-c", "copy",
            "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_list_size", "6",
            "-hls_flags", "delete_segments+omit_endlist", "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", os.path.join(self.hls_dir, "seg%d.mp4"),
            os.path.join(self.hls_dir, "stream.m3u8"),
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    def media_playlist(self) -> str | None:
        try:
            with open(os.path.join(self.hls_dir, "stream.m3u8")) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if "#EXTINF" in text else None

    async def hls(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            return page_not_found()
        directory, name = posixpath.split(request.path[1:])
        if name == "index.m3u8":
            return await self.hls_multivariant(request, directory)
        if not (name == "stream.m3u8" or re.fullmatch(r"init\.mp4|seg\d+\.mp4", name)):
            return page_not_found()

        secret = request.cookies.get("hlsSession") or request.query.get("session", "")
        session = self.hls_sessions.get(secret)
        now = time.monotonic()
        if (
            session is None
            or session.path != directory
            or session.ip != request.remote
            or now - session.last_request > HLS_SESSION_TTL
        ):
            self.stats.hls_without_session += 1
            return error_response(401, "authentication error")
        session.last_request = now

        if name == "stream.m3u8":
            text = self.media_playlist()
            if text is None:
                return web.Response(status=500)
            # Carry the query (the session) into every URI, as MediaMTX does.
            suffix = "?" + request.query_string if request.query_string else ""
            lines = []
            for line in text.splitlines():
                if line.startswith('#EXT-X-MAP:URI="'):
                    line = line[:-1] + suffix + '"'
                elif line and not line.startswith("#"):
                    line += suffix
                lines.append(line)
            body = "\n".join(lines) + "\n"
            return self.hls_ok(directory, body.encode(), "application/vnd.apple.mpegurl")
        try:
            with open(os.path.join(self.hls_dir, name), "rb") as f:
                return self.hls_ok(directory, f.read(), "video/mp4")
        except FileNotFoundError:  # already deleted by ffmpeg, or not written yet
            return web.Response(status=404)

    async def hls_multivariant(self, request: web.Request, path: str) -> web.Response:
        query = parse_qsl(request.query_string, keep_blank_values=True)
        if ("cookieCheck", "1") not in query:
            query = [(k, v) for k, v in query if k != "cookieCheck"] + [("cookieCheck", "1")]
            return web.Response(
                status=302,
                headers={
                    "Location": f"/{posixpath.normpath(request.path).lstrip('/')}?{go_query(query)}",
                    "Set-Cookie": "cookieCheck=1; HttpOnly; Secure; SameSite=None; Partitioned",
                },
            )
        query = [(k, v) for k, v in query if k != "cookieCheck"]
        if not PATH_NAME.fullmatch(path):
            return error_response(500, not_configured(path))
        denied = await self.authorize(request, path, "hls")
        if denied:
            return denied

        now = time.monotonic()
        for old in [s for s, v in self.hls_sessions.items() if now - v.last_request > HLS_SESSION_TTL]:
            del self.hls_sessions[old]
        secret = str(uuid.uuid4())
        self.hls_sessions[secret] = HlsSession(path, request.remote or "", now)
        headers = {}
        if request.cookies.get("cookieCheck") == "1":  # HTTPS browsers keep the partitioned cookie
            headers["Set-Cookie"] = f"hlsSession={secret}; HttpOnly; Secure; SameSite=None; Partitioned"
        else:
            query.append(("session", secret))
        uri = "stream.m3u8" + ("?" + go_query(query) if query else "")

        # BANDWIDTH (peak) and AVERAGE-BANDWIDTH from the segments listed now, as gohlslib does.
        segments = []  # (seconds, bytes)
        for seconds, name in re.findall(r"#EXTINF:([\d.]+),\n(seg\d+\.mp4)", self.media_playlist() or ""):
            with contextlib.suppress(FileNotFoundError):
                segments.append((float(seconds), os.path.getsize(os.path.join(self.hls_dir, name))))
        peak = int(max((8 * size / seconds for seconds, size in segments if seconds > 0), default=0))
        total_seconds = sum(seconds for seconds, _ in segments)
        average = int(8 * sum(size for _, size in segments) / total_seconds) if total_seconds else 0
        attributes = f"BANDWIDTH={peak},AVERAGE-BANDWIDTH={average}"
        if self.camera.codecs:
            attributes += f',CODECS="{self.camera.codecs}"'
        attributes += f",RESOLUTION={self.camera.width}x{self.camera.height}"
        if self.camera.frame_rate:
            attributes += f",FRAME-RATE={self.camera.frame_rate:.3f}"
        text = (
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\n"
            f"#EXT-X-STREAM-INF:{attributes}\n{uri}\n"
        )
        response = self.hls_ok(path, text.encode(), "application/vnd.apple.mpegurl")
        response.headers.update(headers)
        return response

    def hls_ok(self, path: str, body: bytes, content_type: str) -> web.Response:
        self.stats.hls_served[path] += 1
        return web.Response(
            body=body, headers={"Content-Type": content_type, "Cache-Control": "private, no-cache"}
        )

    # ----- control -----

    async def control(self, request: web.Request) -> web.Response:
        route = (request.method, request.path)
        if route == ("POST", "/freeze"):
            if not self.camera.frozen:
                self.camera.freeze()
                self.ffmpeg.send_signal(signal.SIGSTOP)  # the playlist stops where it is
        elif route == ("POST", "/thaw"):
            if self.camera.frozen:
                self.ffmpeg.send_signal(signal.SIGCONT)
                self.camera.thaw()
        elif route == ("POST", "/whep/refuse"):
            body = await request.json() if request.can_read_body else {}
            self.whep_refusal = (int(body.get("status", 400)), str(body.get("error", NO_WEBRTC_CODEC)))
        elif route == ("POST", "/whep/accept"):
            self.whep_refusal = None
        elif route == ("GET", "/stats"):
            return json_response(200, self.stats_document())
        else:
            return page_not_found()
        return json_response(200, {"status": "ok"})

    def stats_document(self) -> dict:
        now = time.monotonic()
        live_hls = [s.path for s in self.hls_sessions.values() if now - s.last_request <= HLS_SESSION_TTL]
        return {
            "frozen": self.camera.frozen,
            "whep_refusing": self.whep_refusal is not None,
            "whep_sessions": dict(Counter(s.path for s in self.whep_sessions.values())),
            "whep_answered": dict(self.stats.whep_answered),
            "hls_sessions": dict(Counter(live_hls)),
            "hls_served": dict(self.stats.hls_served),
            "refused_token_requests": sum(self.stats.refused_tokens.values()),
            "refused_token_requests_by_protocol": dict(self.stats.refused_tokens),
            "hls_requests_without_session": self.stats.hls_without_session,
        }

    # ----- life cycle -----

    async def shutdown(self) -> None:
        await asyncio.gather(*(s.pc.close() for s in list(self.whep_sessions.values())))
        await self.camera.close()
        if self.ffmpeg and self.ffmpeg.returncode is None:
            self.ffmpeg.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
            self.ffmpeg.terminate()
            try:
                await asyncio.wait_for(self.ffmpeg.wait(), 5)
            except TimeoutError:
                self.ffmpeg.kill()
                await self.ffmpeg.wait()
        shutil.rmtree(self.hls_dir, ignore_errors=True)


def go_query(pairs: list[tuple[str, str]]) -> str:
    """A query string encoded as Go's url.Values.Encode does it (sorted by key)."""
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(pairs, key=lambda p: p[0]))


def http_app(label: str, handler, preflight: tuple[str, str] | None) -> web.Application:
    """One listener: every request goes to `handler`, with MediaMTX's CORS answers and one log line."""

    async def serve(request: web.Request) -> web.Response:
        try:
            if (
                preflight
                and request.method == "OPTIONS"
                and "Access-Control-Request-Method" in request.headers
            ):
                response = web.Response(
                    status=204,
                    headers={
                        "Access-Control-Allow-Methods": preflight[0],
                        "Access-Control-Allow-Headers": preflight[1],
                    },
                )
            else:
                response = await handler(request)
        except Exception as e:
            traceback.print_exc()
            response = error_response(500, str(e))
        if preflight:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Server"] = "mediamtx"
        log(f"{label}: {request.method} {request.path} {response.status}")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with aiohttp.ClientSession() as http:
        fixture = Fixture(args, http)
        try:
            await fixture.verifier.refresh()
        except Exception as e:  # the server may come up later: tokens fetch it again
            log(f"jwks: cannot fetch {args.jwks_url} yet: {e}")
        runners = []
        for label, port, handler, preflight in (
            ("whep", args.whep_port, fixture.whep,
             ("OPTIONS, GET, POST, PATCH, DELETE", "Authorization, Content-Type, If-Match")),
            ("hls", args.hls_port, fixture.hls, ("OPTIONS, GET", "Authorization, Range")),
            ("control", args.control_port, fixture.control, None),
        ):  # fmt: skip
            runner = web.AppRunner(http_app(label, handler, preflight), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        fixture.camera.start()
        await fixture.start_ffmpeg()
        ffmpeg_exit = asyncio.ensure_future(fixture.ffmpeg.wait())
        camera_end = asyncio.ensure_future(fixture.camera.ended.wait())
        stopped = asyncio.ensure_future(stop.wait())

        async def ready() -> None:
            await fixture.camera.first_keyframe.wait()
            while fixture.media_playlist() is None:
                await asyncio.sleep(0.1)

        code = 0
        try:
            await asyncio.wait_for(ready(), READY_TIMEOUT)
            print("ready", flush=True)
        except TimeoutError:
            log(f"not ready after {READY_TIMEOUT:.0f} s (camera keyframe, first HLS segment)")
            code = 1
        if code == 0:
            await asyncio.wait([ffmpeg_exit, camera_end, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                log("the camera or ffmpeg stopped: exiting")
                code = 1
        for task in (ffmpeg_exit, camera_end, stopped):
            task.cancel()
        await fixture.shutdown()
        for runner in runners:
            await runner.cleanup()
    log("stopped")
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="RTSP URL of the camera (H.264)")
    parser.add_argument("--jwks-url", required=True, help="OpenNVR's /.well-known/jwks.json")
    parser.add_argument("--whep-port", type=int, required=True)
    parser.add_argument("--hls-port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--issuer", default="", help="required `iss` (authJWTIssuer); empty: not checked")
    parser.add_argument(
        "--audience", default="mediamtx", help="required `aud` (authJWTAudience); empty: not checked"
    )
    parser.add_argument(
        "--jwt-in-query", action="store_true", help="also take ?token= / ?jwt= (authJWTInHTTPQuery: true)"
    )
    parser.add_argument(
        "--auth-fail-delay",
        type=float,
        default=0.0,
        help="refuse bad tokens after a random delay up to this (s)",
    )
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
