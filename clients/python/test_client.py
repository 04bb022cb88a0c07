"""Tests of abtest_eval.Client against a local stand-in of GET /sdk/config."""
import json
import os
import sys
import threading
import unittest
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from abtest_eval import Client  # noqa: E402

KEY = "test-key"


def config(allocation_first):
    experiment = {"id": 1, "status": "running", "salt": "s", "hash": "sha256", "seed": "s",
                  "variants": [{"name": "a", "allocation_percent": allocation_first},
                               {"name": "b", "allocation_percent": 100.0 - allocation_first}],
                  "coverage_percent": 100.0, "conditions": None, "layer": None, "start_at": None,
                  "stop_at": None, "forced": {}, "holdout": False}
    return {"version": 1, "layers": [], "holdouts": [], "experiments": [experiment]}


class StandIn(BaseHTTPRequestHandler):
    """Serves `server.document` with ETag `server.etag`; 304 when If-None-Match matches."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(dict(self.headers))
        if self.path != "/sdk/config" or self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.reply(401 if self.path == "/sdk/config" else 404, b'{"error":"no"}')
        if self.headers.get("If-None-Match") == self.server.etag:
            return self.reply(304, b"")
        self.reply(200, json.dumps(self.server.document).encode(), {"ETag": self.server.etag})

    def reply(self, status, body, headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
        self.server.document, self.server.etag, self.server.requests = config(100.0), '"v1"', []
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def test_downloads_then_revalidates_with_the_etag(self):
        client = Client(self.url, KEY)
        self.assertEqual(client.evaluate(1, "u1", now="2026-12-01T00:00:00Z"), {"variant": "a", "reason": "assigned"})
        self.assertEqual(client.etag, '"v1"')
        self.assertNotIn("If-None-Match", self.server.requests[0])
        self.assertFalse(client.refresh())
        self.assertEqual(self.server.requests[1]["If-None-Match"], '"v1"')
        self.assertEqual(client.evaluate(1, "u1")["variant"], "a")

    def test_takes_a_changed_configuration(self):
        client = Client(self.url, KEY)
        self.assertTrue(client.refresh())
        self.server.document, self.server.etag = config(0.0), '"v2"'
        self.assertTrue(client.refresh())
        self.assertEqual((client.etag, client.evaluate(1, "u1")["variant"]), ('"v2"', "b"))
        self.assertEqual(len(self.server.requests), 2)

    def test_a_wrong_key_raises(self):
        with self.assertRaises(urllib.error.HTTPError) as caught:
            Client(self.url, "wrong").refresh()
        self.assertEqual(caught.exception.code, 401)

    def test_an_unknown_version_is_refused(self):
        self.server.document = dict(config(50.0), version=2)
        client = Client(self.url, KEY)
        with self.assertRaises(ValueError):
            client.refresh()
        self.assertIsNone(client.config)


if __name__ == "__main__":
    unittest.main()
