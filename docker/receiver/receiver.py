"""A webhook receiver that records what it is sent (the compose smoke test's delivery target).

POST <any path>  record {path, headers, body (base64)} and answer 204
GET /received    every recorded request, oldest first, as a JSON list
GET /health      200

It keeps everything in memory and verifies nothing: the smoke test verifies the signatures on the
host, with the Standard Webhooks reference library and the secret the API returned.
"""

import base64
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1_048_576
_received: list[dict[str, object]] = []
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = "smoke-receiver"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, b"")
            return
        body = self.rfile.read(length)
        record: dict[str, object] = {
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": base64.b64encode(body).decode("ascii"),
        }
        with _lock:
            _received.append(record)
        self._answer(204, b"")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, b'{"status": "ok"}')
        elif self.path == "/received":
            with _lock:
                payload = json.dumps(_received).encode()
            self._answer(200, payload)
        else:
            self._answer(404, b"")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"receiver: {self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main() -> None:
    port = int(os.environ.get("PORT", "9000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - a container's only interface
    # As PID 1 the process ignores SIGTERM unless it handles it: stop at once instead of being killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write(f"receiver: listening on :{port}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
