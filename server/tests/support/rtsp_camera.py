#!/usr/bin/python3
"""A real RTSP camera for OpenNVR's tests: Debian's GStreamer RTSP server streaming H.264 test video.

Usage: rtsp_camera.py PORT [USER PASSWORD]
Serves rtsp://127.0.0.1:PORT/stream (1280x720, 10 fps); with USER and PASSWORD, only to them
(digest authentication). With RTSP_CAMERA_AUDIO_ONLY=1 in the environment it serves G.711 audio
and no video; with RTSP_CAMERA_MOUNT=/name it serves at that path instead of /stream (as a media
server's restream of a camera); with RTSP_CAMERA_SIZE=WIDTHxHEIGHT (e.g. 640x360) it streams video at
that size instead (cheaper for tests that decode it). With RTSP_CAMERA_SCENES="/a=smpte@0,ball@8;/b=smpte@0"
it serves each mount with a scene that changes at known times: the test pattern named at each number
of seconds after start ("ball" moves; "smpte" is still). Prints "ready" once listening; runs until
killed.
"""
import os
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    Gst.init(None)
    port = sys.argv[1]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    scenes = os.environ.get("RTSP_CAMERA_SCENES")
    if scenes:
        serve_scenes(server, scenes)
        return
    factory = GstRtspServer.RTSPMediaFactory()
    if os.environ.get("RTSP_CAMERA_AUDIO_ONLY") == "1":
        factory.set_launch("( audiotestsrc is-live=true ! audioconvert ! mulawenc ! rtppcmupay name=pay0 pt=0 )")
    else:
        width, height = os.environ.get("RTSP_CAMERA_SIZE", "1280x720").split("x")
        factory.set_launch(
            "( videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width={int(width)},height={int(height)},framerate=10/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=500 "
            "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    factory.set_shared(True)
    if len(sys.argv) == 4:
        user, password = sys.argv[2], sys.argv[3]
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        # Digest, as cameras use it (the method enum cannot be OR-ed through GObject introspection).
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(os.environ.get("RTSP_CAMERA_MOUNT", "/stream"), factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


def serve_scenes(server, scenes: str) -> None:
    """Serves each mount of SCENES (see the module's doc) at 640x360, switching its pattern on time.

    Each pattern is a source of its own behind an input-selector, which switches between them
    safely while they stream (changing a running videotestsrc's pattern is not)."""
    start = time.monotonic()
    for entry in scenes.split(";"):
        mount, schedule = entry.split("=", 1)
        steps = []
        for step in schedule.split(","):
            pattern, at = step.split("@")
            steps.append((float(at), pattern))
        patterns = list(dict.fromkeys(p for _, p in steps))
        caps = "video/x-raw,width=640,height=360,framerate=10/1"
        sources = " ".join(
            f"videotestsrc is-live=true pattern={p} ! {caps} ! sel.sink_{i}" for i, p in enumerate(patterns)
        )
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( input-selector name=sel ! {caps} "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=500 "
            f"! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 {sources} )"
        )
        factory.set_shared(True)

        def configure(_factory, media, steps=steps, patterns=patterns):
            sel = media.get_element().get_child_by_name("sel")
            alive = [True]

            def follow():
                if not alive[0]:
                    return False  # the media is gone (its last reader left)
                elapsed = time.monotonic() - start
                due = [p for at, p in steps if at <= elapsed]
                if due:
                    pad = sel.get_static_pad(f"sink_{patterns.index(due[-1])}")
                    if pad is not None and sel.get_property("active-pad") != pad:
                        sel.set_property("active-pad", pad)
                return True

            def gone(_media):
                alive[0] = False

            media.connect("unprepared", gone)
            follow()
            GLib.timeout_add(50, follow)

        factory.connect("media-configure", configure)
        server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
