#!/usr/bin/python3
"""A real RTSP camera for OpenNVR's tests: Debian's GStreamer RTSP server streaming H.264 test video.

Usage: rtsp_camera.py PORT [USER PASSWORD]
Serves rtsp://127.0.0.1:PORT/stream (1280x720, 10 fps); with USER and PASSWORD, only to them
(digest authentication). With RTSP_CAMERA_AUDIO_ONLY=1 in the environment it serves G.711 audio
and no video; with RTSP_CAMERA_MOUNT=/name it serves at that path instead of /stream (as a media
server's restream of a camera); with RTSP_CAMERA_SIZE=WIDTHxHEIGHT (e.g. 640x360) it streams video at
that size instead (cheaper for tests that decode it). Prints "ready" once listening; runs until killed.
"""
import os
import sys

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


if __name__ == "__main__":
    main()
