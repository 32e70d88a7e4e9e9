#!/usr/bin/env python3
"""OpenNVR example adapter: frontal faces with the Haar cascade bundled in OpenCV's wheel.

Implements the contract in docs/adapter-contract.md with the standard library's HTTP server and
nothing downloaded at run time:

    GET  /health         200 {"status": "ok"}
    GET  /capabilities   name, model, version, tasks, labels, max_in_flight
    POST /infer          multipart (frame, task, camera_id, frame_time) -> detections and timing

Configuration (flags override the environment):
    ADAPTER_HOST           address to listen on (default 127.0.0.1)
    ADAPTER_PORT           port (default 9101)
    ADAPTER_TOKEN          bearer token every call must carry (unset: no token required)
    ADAPTER_MAX_IN_FLIGHT  concurrent /infer calls before answering 503 busy (default 2)
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import math
import os
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

NAME = "opencv-faces"
VERSION = "1.0.0"
MODEL = "haarcascade_frontalface_default"
TASK = "face_detection"
LABEL = "face"
MAX_BODY = 16 * 1024 * 1024
MAX_PIXELS = 40_000_000
CASCADE = os.path.join(cv2.data.haarcascades, MODEL + ".xml")

log = logging.getLogger("faces")


class AdapterError(Exception):
    """A failure answered with the contract's error envelope."""

    def __init__(self, status: int, code: str, message: str, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.transient = transient


class FaceDetector:
    """Finds frontal faces; one cascade per thread, because a cascade is not safe to share."""

    def __init__(self, min_neighbors: int = 5, min_size: int = 24):
        if not os.path.exists(CASCADE):
            raise RuntimeError(f"OpenCV's wheel has no {CASCADE} (OpenCV 5 dropped the cascades; use 4.x)")
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(CASCADE)
            if cascade.empty():
                raise RuntimeError(f"cannot load {CASCADE}")
            self._local.cascade = cascade
        return cascade

    def detect(self, jpeg: bytes) -> list[dict]:
        """Faces in a JPEG (or any image OpenCV decodes), with boxes normalised to the frame."""
        data = np.frombuffer(jpeg, dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if image is None or image.size == 0:
            raise AdapterError(400, "bad_image", "the frame is not an image OpenCV can decode")
        height, width = image.shape[:2]
        if width * height > MAX_PIXELS:
            raise AdapterError(400, "bad_image", f"the frame is {width}x{height}, larger than this adapter takes")
        gray = cv2.equalizeHist(image)
        boxes, _levels, weights = self._cascade().detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        found = []
        for (x, y, w, h), weight in zip(boxes, weights):
            found.append(
                {
                    "label": LABEL,
                    "confidence": round(confidence(float(weight)), 4),
                    "box": {
                        "x": clamp(x / width),
                        "y": clamp(y / height),
                        "width": clamp(w / width),
                        "height": clamp(h / height),
                    },
                    "attributes": {"model": MODEL},
                }
            )
        found.sort(key=lambda d: d["confidence"], reverse=True)
        return found


def confidence(weight: float) -> float:
    """Maps the cascade's last-stage weight into [0, 1]: monotone, not a calibrated probability."""
    return clamp(1.0 - math.exp(-max(weight, 0.0) / 3.0))


def clamp(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise AdapterError(400, "bad_request", "POST /infer takes multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise AdapterError(400, "bad_request", "the multipart body cannot be parsed")
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[name] = part.get_payload(decode=True) or b""
    return parts


class Adapter(ThreadingHTTPServer):
    """The HTTP service: contract routing, the bearer token and the in-flight limit."""

    daemon_threads = True

    def __init__(self, address, token: str | None = None, max_in_flight: int = 2, detector=None):
        super().__init__(address, Handler)
        self.token = token or None
        self.max_in_flight = max(1, max_in_flight)
        self.slots = threading.BoundedSemaphore(self.max_in_flight)
        self.detector = detector or FaceDetector()

    def capabilities(self) -> dict:
        return {
            "name": NAME,
            "model": MODEL,
            "version": VERSION,
            "tasks": [TASK],
            "labels": [LABEL],
            "max_in_flight": self.max_in_flight,
        }


class Handler(BaseHTTPRequestHandler):
    server: Adapter
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._serve(lambda: self._get())

    def do_POST(self):
        self._serve(lambda: self._post())

    def _get(self):
        if self.path == "/health":
            return {"status": "ok"}
        if self.path == "/capabilities":
            return self.server.capabilities()
        raise AdapterError(404, "not_found", f"no GET {self.path}")

    def _post(self):
        if self.path != "/infer":
            raise AdapterError(404, "not_found", f"no POST {self.path}")
        length = self.headers.get("Content-Length")
        if length is None:
            raise AdapterError(411, "length_required", "POST /infer needs a Content-Length")
        try:
            length = int(length)
        except ValueError:
            raise AdapterError(400, "bad_request", "Content-Length is not a number") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise AdapterError(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        body = self.rfile.read(length)
        parts = parse_multipart(self.headers.get("Content-Type", ""), body)
        task = parts.get("task", b"").decode("utf-8", "replace")
        if task != TASK:
            raise AdapterError(400, "unknown_task", f"task {task!r} is not one of [{TASK!r}]")
        frame = parts.get("frame")
        if not frame:
            raise AdapterError(400, "bad_request", "the part 'frame' is missing or empty")
        if not self.server.slots.acquire(blocking=False):
            raise AdapterError(503, "busy", f"{self.server.max_in_flight} frames already in flight", transient=True)
        try:
            started = time.perf_counter()
            detections = self.server.detector.detect(frame)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
        finally:
            self.server.slots.release()
        camera = parts.get("camera_id", b"").decode("utf-8", "replace")
        log.info("camera=%s faces=%d %.1f ms", camera or "-", len(detections), elapsed_ms)
        return {"detections": detections, "timing": {"inference_ms": round(elapsed_ms, 2)}}

    def _serve(self, route):
        correlation = self.headers.get("X-Correlation-Id") or str(uuid.uuid4())
        try:
            self._authorize()
            status, body = 200, route()
        except AdapterError as e:
            status = e.status
            body = {"error": {"code": e.code, "message": e.message, "transient": e.transient}}
        except Exception:  # a bug here must still answer the contract's envelope
            log.exception("correlation=%s internal error", correlation)
            status = 500
            body = {"error": {"code": "internal", "message": "internal error", "transient": True}}
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Correlation-Id", correlation)
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if status != 200:  # the request's body may be unread: do not reuse the connection
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _authorize(self):
        token = self.server.token
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise AdapterError(401, "unauthorized", "a valid bearer token is required")

    def log_message(self, fmt, *args):  # requests are logged by _post, never with their headers
        log.debug("%s %s", self.address_string(), fmt % args)


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenNVR example adapter: face detection with OpenCV")
    parser.add_argument("--host", default=os.environ.get("ADAPTER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ADAPTER_PORT", "9101")))
    parser.add_argument(
        "--max-in-flight", type=int, default=int(os.environ.get("ADAPTER_MAX_IN_FLIGHT", "2"))
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = os.environ.get("ADAPTER_TOKEN")
    if not token:
        log.warning("ADAPTER_TOKEN is not set: every caller that can reach this port may use it")
    server = Adapter((args.host, args.port), token=token, max_in_flight=args.max_in_flight)
    log.info("%s %s listening on %s:%d", NAME, VERSION, *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
