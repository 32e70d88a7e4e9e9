"""The example adapter against the contract, on real photographs bundled with scikit-image."""

import http.client
import json
import os
import sys
import threading
import unittest
import uuid

import cv2
import numpy as np
from skimage import data as photos

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import adapter  # noqa: E402

TOKEN = "test-token-" + uuid.uuid4().hex


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def multipart(fields: dict) -> tuple[str, bytes]:
    boundary = "opennvr" + uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        if isinstance(value, bytes):
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="frame.jpg"\r\n'
                "Content-Type: image/jpeg\r\n"
            )
            body = value
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
            body = value.encode()
        out += f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


class AdapterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = adapter.Adapter(("127.0.0.1", 0), token=TOKEN, max_in_flight=2)
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def call(self, method, path, body=None, content_type=None, token=TOKEN, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if content_type:
            h["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        return r.status, json.loads(payload), r

    def infer(self, frame: bytes, task="face_detection", **kw):
        ct, body = multipart({"frame": frame, "task": task, "camera_id": str(uuid.uuid4())})
        return self.call("POST", "/infer", body, ct, **kw)

    def assert_envelope(self, body, code, transient):
        self.assertEqual(body["error"]["code"], code)
        self.assertEqual(body["error"]["transient"], transient)
        self.assertTrue(body["error"]["message"])

    def test_health_and_capabilities(self):
        status, body, _ = self.call("GET", "/health")
        self.assertEqual((status, body), (200, {"status": "ok"}))
        status, caps, _ = self.call("GET", "/capabilities")
        self.assertEqual(status, 200)
        self.assertEqual(caps["tasks"], ["face_detection"])
        self.assertEqual(caps["labels"], ["face"])
        self.assertEqual(caps["max_in_flight"], 2)
        for key in ("name", "model", "version"):
            self.assertTrue(caps[key], key)

    def test_finds_the_astronauts_face(self):
        # Eileen Collins' portrait (NASA, public domain): one face, in the upper middle of the frame.
        status, body, _ = self.infer(jpeg(photos.astronaut()))
        self.assertEqual(status, 200, body)
        faces = body["detections"]
        self.assertEqual(len(faces), 1, faces)
        face = faces[0]
        self.assertEqual(face["label"], "face")
        self.assertGreater(face["confidence"], 0.0)
        self.assertLessEqual(face["confidence"], 1.0)
        box = face["box"]
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # Her face spans about x 0.35-0.53 and y 0.13-0.31 of the 512x512 portrait.
        self.assertTrue(0.35 < cx < 0.53 and 0.13 < cy < 0.31, box)
        self.assertTrue(0.1 < box["width"] < 0.35 and 0.1 < box["height"] < 0.35, box)
        self.assertGreaterEqual(body["timing"]["inference_ms"], 0.0)

    def test_finds_the_face_wherever_it_is_in_a_larger_frame(self):
        # The portrait pasted at the bottom right of a 1280x720 dark frame: the box follows it.
        frame = np.full((720, 1280, 3), 30, dtype=np.uint8)
        frame[200:712, 760:1272] = photos.astronaut()
        status, body, _ = self.infer(jpeg(frame))
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["detections"]), 1, body)
        box = body["detections"][0]["box"]
        cx, cy = (box["x"] + box["width"] / 2) * 1280, (box["y"] + box["height"] / 2) * 720
        self.assertTrue(760 + 177 < cx < 760 + 272 and 200 + 66 < cy < 200 + 161, (cx, cy))

    def test_photographs_without_people_have_no_faces(self):
        for name in ("coffee", "chelsea", "rocket"):
            status, body, _ = self.infer(jpeg(getattr(photos, name)()))
            self.assertEqual(status, 200, body)
            self.assertEqual(body["detections"], [], name)

    def test_a_token_is_required_on_every_call(self):
        for token in (None, "wrong"):
            for method, path in (("GET", "/health"), ("GET", "/capabilities")):
                status, body, r = self.call(method, path, token=token)
                self.assertEqual(status, 401)
                self.assert_envelope(body, "unauthorized", False)
                self.assertEqual(r.getheader("WWW-Authenticate"), "Bearer")
            status, body, _ = self.infer(jpeg(photos.astronaut()), token=token)
            self.assertEqual(status, 401)

    def test_correlation_id_is_echoed(self):
        cid = str(uuid.uuid4())
        _, _, r = self.call("GET", "/health", headers={"X-Correlation-Id": cid})
        self.assertEqual(r.getheader("X-Correlation-Id"), cid)

    def test_bad_input_is_a_permanent_error(self):
        status, body, _ = self.infer(b"this is not a jpeg")
        self.assertEqual(status, 400)
        self.assert_envelope(body, "bad_image", False)
        status, body, _ = self.infer(jpeg(photos.astronaut()), task="person_detection")
        self.assertEqual(status, 400)
        self.assert_envelope(body, "unknown_task", False)
        status, body, _ = self.call("POST", "/infer", b"{}", "application/json")
        self.assertEqual(status, 400)
        self.assert_envelope(body, "bad_request", False)
        ct, raw = multipart({"task": "face_detection"})
        status, body, _ = self.call("POST", "/infer", raw, ct)
        self.assertEqual(status, 400)
        self.assert_envelope(body, "bad_request", False)
        status, body, _ = self.call("GET", "/nothing")
        self.assertEqual(status, 404)

    def test_busy_beyond_max_in_flight_is_transient(self):
        slots = self.server.slots
        held = 0
        try:
            while slots.acquire(blocking=False):
                held += 1
            self.assertEqual(held, 2)
            status, body, _ = self.infer(jpeg(photos.astronaut()))
            self.assertEqual(status, 503)
            self.assert_envelope(body, "busy", True)
        finally:
            for _ in range(held):
                slots.release()
        status, _, _ = self.infer(jpeg(photos.astronaut()))
        self.assertEqual(status, 200)

    def test_concurrent_calls_agree(self):
        frame = jpeg(photos.astronaut())
        results = []

        def one():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            ct, body = multipart({"frame": frame, "task": "face_detection", "camera_id": ""})
            for _ in range(5):
                conn.request("POST", "/infer", body=body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ct})
                r = conn.getresponse()
                results.append((r.status, json.loads(r.read())))
            conn.close()

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 10)
        for status, body in results:
            self.assertEqual(status, 200, body)
            self.assertEqual(len(body["detections"]), 1)


if __name__ == "__main__":
    unittest.main()
