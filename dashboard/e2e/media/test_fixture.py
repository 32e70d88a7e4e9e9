"""Tests of fixture.py against a real RTSP test camera, a real JWKS and real WebRTC and HLS clients.

Run (from the repository root; needs ffmpeg and the GStreamer RTSP server of server/tests/support):
    scripts/venv-sync dashboard/e2e/media/.venv dashboard/e2e/media/requirements.txt
    dashboard/e2e/media/.venv/bin/python -m pytest -q dashboard/e2e/media
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = Path(__file__).resolve().parent
CAMERA = HERE.parents[2] / "server" / "tests" / "support" / "rtsp_camera.py"
PATH = "opennvr-" + "0123456789abcdef" * 2
OTHER_PATH = "opennvr-" + "fedcba9876543210" * 2
ISSUER = "opennvr"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """An Ed25519 signer like OpenNVR's, and the JWKS document it would publish."""

    def __init__(self) -> None:
        self.private = {"k1": Ed25519PrivateKey.generate()}

    def add(self, kid: str) -> None:
        self.private[kid] = Ed25519PrivateKey.generate()

    def jwks(self) -> bytes:
        keys = [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": kid,
                "alg": "EdDSA",
                "use": "sig",
                "x": b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
            }
            for kid, key in self.private.items()
        ]
        return json.dumps({"keys": keys}).encode()

    def token(self, path: str = PATH, *, kid: str = "k1", key=None, lifetime: int = 300, **overrides) -> str:
        """A viewer token for `path`; `overrides` replace claims (None removes one)."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "mediamtx",
            "sub": "viewer",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "mediamtx_permissions": [{"action": "read", "path": path}],
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        signing_input = (
            b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid}).encode())
            + "."
            + b64url(json.dumps(claims).encode())
        )
        signature = (key or self.private[kid]).sign(signing_input.encode())
        return signing_input + "." + b64url(signature)


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http(method: str, url: str, *, token: str = "", body: bytes = b"", headers=None, follow=True) -> Reply:
    request = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", "Bearer " + token)
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=15) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read())


def start(command: list[str], env=None) -> subprocess.Popen:
    """Starts a process that prints "ready" on stdout and waits for that line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    line = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(40)
    if not line or line[0].strip() != "ready":
        process.kill()
        raise RuntimeError(f"{command[:2]} did not get ready: {line}")
    return process


@dataclass
class Media:
    keys: Keys
    whep: str
    hls: str
    control: str
    process: subprocess.Popen

    def stats(self) -> dict:
        return http("GET", self.control + "/stats").json()

    def post(self, route: str, body: dict | None = None) -> None:
        reply = http("POST", self.control + route, body=json.dumps(body).encode() if body else b"")
        assert reply.status == 200, reply


@pytest.fixture(scope="module")
def camera():
    port = free_port()
    env = dict(os.environ, RTSP_CAMERA_SIZE="640x360")
    process = start(["/usr/bin/python3", str(CAMERA), str(port)], env)
    yield f"rtsp://127.0.0.1:{port}/stream"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def jwks_url(keys):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = keys.jwks()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()


def run_fixture(camera: str, jwks_url: str, keys: Keys, *extra: str) -> Media:
    whep, hls, control = free_port(), free_port(), free_port()
    command = [sys.executable, str(HERE / "fixture.py"), "--source", camera, "--jwks-url", jwks_url]
    command += ["--whep-port", str(whep), "--hls-port", str(hls), "--control-port", str(control)]
    command += ["--issuer", ISSUER, *extra]
    return Media(
        keys,
        f"http://127.0.0.1:{whep}",
        f"http://127.0.0.1:{hls}",
        f"http://127.0.0.1:{control}",
        start(command),
    )


def stop_fixture(media: Media) -> None:
    """SIGTERM must end the fixture cleanly, ffmpeg with it."""
    children = Path(f"/proc/{media.process.pid}/task/{media.process.pid}/children").read_text().split()
    assert children, "ffmpeg is not running"
    media.process.send_signal(signal.SIGTERM)
    assert media.process.wait(15) == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


@pytest.fixture(scope="module")
def media(camera, jwks_url, keys):
    media = run_fixture(camera, jwks_url, keys)
    yield media
    stop_fixture(media)


# ---------------------------------------------------------------------------------------------
# A WHEP viewer: aiortc as the browser, decoding what it receives
# ---------------------------------------------------------------------------------------------


class Viewer:
    """A WHEP client as a browser is one: recvonly video, every candidate in the offer."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames: list[tuple[float, int, int]] = []  # (arrival, width, height)

        @self.pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._read(track))

    async def _read(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames.append((time.monotonic(), frame.width, frame.height))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def connect(self, url: str, token: str) -> Reply:
        offer = await self.offer()
        reply = await asyncio.to_thread(
            http, "POST", url, token=token, body=offer.encode(), headers={"Content-Type": "application/sdp"}
        )
        if reply.status == 201:
            answer = reply.body.decode()
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return reply

    async def frames_within(self, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        start = len(self.frames)
        while len(self.frames) - start < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return len(self.frames) - start >= count

    async def close(self) -> None:
        await self.pc.close()


def whep_url(media: Media, path: str = PATH) -> str:
    return f"{media.whep}/{path}/whep"


def post_offer(media: Media, path: str = PATH, **kwargs) -> Reply:
    """A WHEP POST whose offer does not matter (refused before it is read)."""
    headers = {"Content-Type": "application/sdp"}
    return http("POST", whep_url(media, path), body=b"v=0\r\n", headers=headers, **kwargs)


# ---------------------------------------------------------------------------------------------
# WHEP
# ---------------------------------------------------------------------------------------------


def test_whep_preflight_answers_cors(media):
    reply = http(
        "OPTIONS",
        whep_url(media),
        headers={
            "Origin": "http://127.0.0.1:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Access-Control-Allow-Methods"] == "OPTIONS, GET, POST, PATCH, DELETE"
    assert reply.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, If-Match"


def refused_tokens(keys: Keys) -> dict[str, str]:
    """Tokens MediaMTX refuses for reading PATH, by why."""
    stranger = Ed25519PrivateKey.generate()
    head, claims, signature = keys.token().split(".")
    widened = json.loads(base64.urlsafe_b64decode(claims + "=="))
    widened["mediamtx_permissions"] = [{"action": "read", "path": ""}]
    return {
        "another path": keys.token(OTHER_PATH),
        "expired": keys.token(lifetime=-1),
        "not yet valid": keys.token(nbf=int(time.time()) + 60),
        "other audience": keys.token(aud="someone-else"),
        "no audience": keys.token(aud=None),
        "other issuer": keys.token(iss="elsewhere"),
        "unknown signer": keys.token(key=stranger),
        "unknown kid": keys.token(kid="nope", key=stranger),
        "claims changed after signing": f"{head}.{b64url(json.dumps(widened).encode())}.{signature}",
        "playback only": keys.token(mediamtx_permissions=[{"action": "playback", "path": PATH}]),
        "unknown permission field": keys.token(
            mediamtx_permissions=[{"action": "read", "path": PATH, "note": "x"}]
        ),
        "no permissions claim": keys.token(mediamtx_permissions=None),
        "not a JWT": "abc.def",
    }


@pytest.mark.parametrize("why", list(refused_tokens(Keys())))
def test_whep_refuses_tokens(media, why):
    before = media.stats()["refused_token_requests"]
    reply = post_offer(media, token=refused_tokens(media.keys)[why])
    assert reply.status == 401
    assert reply.json() == {"status": "error", "error": "authentication error"}
    assert "WWW-Authenticate" not in reply.headers  # credentials were given
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert media.stats()["refused_token_requests"] == before + 1


def test_whep_without_token_asks_for_credentials(media):
    reply = post_offer(media)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="mediamtx"'
    # a token in the query counts only with --jwt-in-query (authJWTInHTTPQuery)
    reply = http(
        "POST",
        whep_url(media) + "?jwt=" + media.keys.token(),
        body=b"v=0\r\n",
        headers={"Content-Type": "application/sdp"},
    )
    assert reply.status == 401


def test_whep_rejects_malformed_requests(media):
    token = media.keys.token()
    reply = http("POST", whep_url(media), token=token, body=b"v=0", headers={"Content-Type": "text/plain"})
    assert (reply.status, reply.json()["error"]) == (400, "invalid Content-Type")
    reply = post_offer(media, "cameras/front", token=token)
    assert (reply.status, reply.json()["error"]) == (400, "path 'cameras/front' is not configured")
    reply = post_offer(media, token=token)  # "v=0" is no offer
    assert (reply.status, reply.json()["error"].startswith("cannot answer the offer")) == (400, True)
    assert http("GET", whep_url(media), token=token).status == 405
    assert http("DELETE", whep_url(media) + "/" + str(uuid.uuid4())).status == 404
    assert http("DELETE", whep_url(media) + "/not-a-uuid").status == 400
    assert http("GET", media.whep + "/").status == 404


def test_whep_plays_the_camera_until_deleted(media):
    async def scenario():
        viewer = Viewer()
        reply = await viewer.connect(whep_url(media), media.keys.token())
        assert reply.status == 201, reply
        assert reply.headers["Content-Type"] == "application/sdp"
        assert re.fullmatch(rf"/{PATH}/whep/[0-9a-f-]{{36}}", reply.headers["Location"])
        assert reply.headers["ETag"]
        assert "Location" in reply.headers["Access-Control-Expose-Headers"]
        answer = reply.body.decode()
        assert "a=candidate:" in answer and "a=end-of-candidates" in answer
        assert re.search(r"a=rtpmap:\d+ H264/90000", answer)
        assert "packetization-mode=1" in answer
        assert "VP8" not in answer  # forwarded as it comes, never transcoded

        assert await viewer.frames_within(10, 15), f"{len(viewer.frames)} frames"
        assert {(w, h) for _, w, h in viewer.frames} == {(640, 360)}
        assert media.stats()["whep_sessions"] == {PATH: 1}

        session = media.whep + reply.headers["Location"]
        patch = {"Content-Type": "application/trickle-ice-sdpfrag"}
        assert (
            await asyncio.to_thread(http, "PATCH", session, body=b"a=end-of-candidates\r\n", headers=patch)
        ).status == 204
        assert (await asyncio.to_thread(http, "DELETE", session)).status == 200
        assert media.stats()["whep_sessions"] == {}
        assert (await asyncio.to_thread(http, "DELETE", session)).status == 404
        await viewer.close()

    asyncio.run(scenario())


def test_whep_answers_400_to_an_offer_without_video(media):
    async def scenario():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        body = pc.localDescription.sdp.encode()
        reply = await asyncio.to_thread(
            http, "POST", whep_url(media), token=media.keys.token(), body=body, headers=headers
        )
        await pc.close()
        return reply

    reply = asyncio.run(scenario())
    assert (reply.status, reply.json()["error"]) == (
        400,
        "cannot answer the offer: the offer has no video media",
    )


def test_whep_drops_a_viewer_that_never_connects(media):
    async def scenario():
        viewer = Viewer()
        offer = await viewer.offer()
        headers = {"Content-Type": "application/sdp"}
        reply = await asyncio.to_thread(
            http, "POST", whep_url(media), token=media.keys.token(), body=offer.encode(), headers=headers
        )
        assert reply.status == 201  # and the answer is never applied
        assert media.stats()["whep_sessions"] == {PATH: 1}
        await asyncio.sleep(11)  # MediaMTX's webrtcHandshakeTimeout is 10 s
        assert media.stats()["whep_sessions"] == {}
        assert (await asyncio.to_thread(http, "DELETE", media.whep + reply.headers["Location"])).status == 404
        await viewer.close()

    asyncio.run(scenario())


def test_whep_refusal_mode(media):
    async def scenario():
        media.post("/whep/refuse")
        try:
            reply = await Viewer().connect(whep_url(media), media.keys.token())
            assert reply.status == 400
            assert reply.json()["error"].startswith("the stream doesn't contain any supported codec")
            assert post_offer(media).status == 401  # the token is still checked first
            media.post("/whep/refuse", {"status": 500, "error": "deadline exceeded"})
            reply = await Viewer().connect(whep_url(media), media.keys.token())
            assert (reply.status, reply.json()) == (500, {"status": "error", "error": "deadline exceeded"})
            assert media.stats()["whep_refusing"] is True
        finally:
            media.post("/whep/accept")
        viewer = Viewer()
        assert (await viewer.connect(whep_url(media), media.keys.token())).status == 201
        await viewer.close()

    asyncio.run(scenario())


def test_freeze_stops_frames_and_segments_until_thaw(media):
    hls = HlsClient(media, media.keys.token())

    async def scenario():
        viewer = Viewer()
        assert (await viewer.connect(whep_url(media), media.keys.token())).status == 201
        assert await viewer.frames_within(5, 15)
        media.post("/freeze")
        try:
            assert media.stats()["frozen"] is True
            await asyncio.sleep(1)  # frames already on their way
            frozen_at, sequence = len(viewer.frames), hls.media_sequence()
            await asyncio.sleep(3)
            assert len(viewer.frames) == frozen_at, "frames arrived while frozen"
            assert hls.media_sequence() == sequence, "HLS segments were produced while frozen"
            assert viewer.pc.connectionState == "connected"
        finally:
            media.post("/thaw")
        assert await viewer.frames_within(5, 10), "no frames after thaw"
        deadline = time.monotonic() + 10
        while hls.media_sequence() == sequence and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert hls.media_sequence() > sequence
        await viewer.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# HLS
# ---------------------------------------------------------------------------------------------


class HlsClient:
    """Walks MediaMTX's HLS handshake: index.m3u8 -> redirect -> multivariant -> media playlist."""

    def __init__(self, media: Media, token: str, path: str = PATH):
        self.media, self.path = media, path
        first = http("GET", f"{media.hls}/{path}/index.m3u8", token=token, follow=False)
        assert first.status == 302
        self.index = http("GET", media.hls + first.headers["Location"], token=token)
        assert self.index.status == 200, self.index
        self.stream_uri = self.index.body.decode().strip().splitlines()[-1]

    def get(self, uri: str) -> Reply:
        return http("GET", f"{self.media.hls}/{self.path}/{uri}")

    def media_playlist(self) -> str:
        reply = self.get(self.stream_uri)
        assert reply.status == 200, reply
        return reply.body.decode()

    def media_sequence(self) -> int:
        return int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", self.media_playlist())[1])


def test_hls_redirects_then_checks_the_token(media):
    index = f"{media.hls}/{PATH}/index.m3u8"
    reply = http("GET", index, follow=False)
    assert reply.status == 302
    assert reply.headers["Location"] == f"/{PATH}/index.m3u8?cookieCheck=1"
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert http("GET", index).status == 401
    assert http("GET", index, token=media.keys.token(OTHER_PATH)).status == 401
    assert http("GET", index, token=media.keys.token(lifetime=-1)).status == 401
    assert http("GET", index + "?jwt=" + media.keys.token()).status == 401
    assert http("GET", f"{media.hls}/cameras/front/index.m3u8", token=media.keys.token()).status == 500
    preflight = http(
        "OPTIONS", index, headers={"Origin": "http://127.0.0.1:5173", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization, Range"


def test_hls_serves_a_session_its_playlists_and_segments(media):
    before = media.stats()["hls_served"].get(PATH, 0)
    client = HlsClient(media, media.keys.token())
    assert client.index.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert client.index.headers["Cache-Control"] == "private, no-cache"
    index = client.index.body.decode()
    assert re.search(r'CODECS="avc1\.42[0-9a-f]{4}",RESOLUTION=640x360', index), index
    assert re.fullmatch(r"stream\.m3u8\?session=[0-9a-f-]{36}", client.stream_uri)

    playlist = client.media_playlist()
    session = client.stream_uri.split("?")[1]
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)[1]
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert init == "init.mp4?" + session and segments and all(s.endswith("?" + session) for s in segments)
    for uri in (init, segments[-1]):
        reply = client.get(uri)
        assert (reply.status, reply.headers["Content-Type"]) == (200, "video/mp4")
        assert len(reply.body) > 0
    assert media.stats()["hls_served"][PATH] >= before + 4
    assert media.stats()["hls_sessions"].get(PATH, 0) >= 1

    refused = media.stats()["hls_requests_without_session"]
    assert client.get(segments[-1].split("?")[0]).status == 401
    assert client.get("stream.m3u8?session=" + str(uuid.uuid4())).status == 401
    other = http("GET", f"{media.hls}/{OTHER_PATH}/{client.stream_uri}")  # a session is for one path
    assert other.status == 401
    assert media.stats()["hls_requests_without_session"] == refused + 3


def test_hls_plays_in_ffmpeg_with_a_bearer_token(media):
    # ffmpeg's HLS demuxer follows the redirect and sends the header with every request, as hls.js does
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-headers", f"Authorization: Bearer {media.keys.token()}\r\n"]
        + ["-i", f"{media.hls}/{PATH}/index.m3u8", "-t", "3", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Video: h264 (Constrained Baseline)" in result.stderr and "640x360" in result.stderr
    frames = int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1])
    assert frames >= 20, result.stderr[-1000:]


# ---------------------------------------------------------------------------------------------
# Keys and options
# ---------------------------------------------------------------------------------------------


def test_a_rotated_key_is_fetched_when_first_used(media):
    media.keys.add("k2")
    index = f"{media.hls}/{PATH}/index.m3u8"
    assert http("GET", index, token=media.keys.token(kid="k2")).status == 200
    assert http("GET", index, token=media.keys.token(kid="k1")).status == 200


def test_jwt_in_query_when_enabled(camera, jwks_url, keys):
    media = run_fixture(camera, jwks_url, keys, "--jwt-in-query")
    try:
        index = f"{media.hls}/{PATH}/index.m3u8"
        reply = http("GET", index + "?jwt=" + keys.token())
        assert reply.status == 200
        stream_uri = reply.body.decode().strip().splitlines()[-1]
        assert stream_uri.startswith("stream.m3u8?jwt=")  # the query is carried along, as MediaMTX does
        assert http("GET", index + "?token=" + keys.token()).status == 200
        assert http("GET", index + "?jwt=" + keys.token(OTHER_PATH)).status == 401
    finally:
        stop_fixture(media)
