"""A real local HTTP server for tests: scripted answers per URL, every request recorded."""

import itertools
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds to wait before answering (the timeout tests)


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # as requested, query string included
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._paths = itertools.count()
        self._arrived = threading.Condition()
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def url(self, *answers: int | Answer, path: str | None = None) -> str:
        """A fresh URL that gives these answers in turn, then repeats the last one (200 if none).

        `path` fixes the URL's path instead, for a client that picks its own (an OTLP exporter).
        Any path no URL was handed out for is answered 404.
        """
        path = path or f"/hooks/{next(self._paths)}"
        with self._arrived:
            self._scripts[path] = [a if isinstance(a, Answer) else Answer(a) for a in answers] or [Answer()]
        return self.base_url + path

    def to(self, url: str) -> list[Received]:
        """The requests that arrived at `url` (whatever their query string)."""
        path = urlsplit(url).path
        with self._arrived:
            return [request for request in self.requests if urlsplit(request.path).path == path]

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Every request so far, as soon as there are `count` of them or after `timeout` seconds."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def peak_in_flight(self, url: str) -> int:
        """The most requests to `url` the receiver was handling at once."""
        with self._arrived:
            return self._peak.get(urlsplit(url).path, 0)

    def handling(self, request: Received, delta: int) -> None:
        """The server's side: it starts (+1) or stops (-1) handling `request`."""
        path = urlsplit(request.path).path
        with self._arrived:
            self._in_flight[path] = self._in_flight.get(path, 0) + delta
            self._peak[path] = max(self._peak.get(path, 0), self._in_flight[path])

    def answer(self, request: Received) -> Answer:
        """Record `request` and say what to answer it (the server's side)."""
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            script = self._scripts.get(urlsplit(request.path).path)
            if script is None:
                return Answer(404)
            return script.pop(0) if len(script) > 1 else script[0]


@contextmanager
def running_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A Receiver serving on 127.0.0.1 (a free port), each request in a thread of its own; HTTPS with `tls`
    (a server context: tests/support/certificates.py)."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:  # recorded too, so that a followed redirect would show
            self._answer()

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Received(self.command, self.path, headers, body)
            receiver.handling(request, +1)
            try:
                answer = receiver.answer(request)
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client hung up (the timeout tests)
            finally:
                receiver.handling(request, -1)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
