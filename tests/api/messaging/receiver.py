"""A real local HTTP receiver: scripted answers per path, every request recorded."""

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._paths = itertools.count()
        self._lock = threading.Lock()

    def url(self, *answers: int | Answer) -> str:
        """A fresh URL that gives these answers in turn, then repeats the last one (200 if none)."""
        path = f"/hooks/{next(self._paths)}"
        script = [a if isinstance(a, Answer) else Answer(a) for a in answers] or [Answer()]
        with self._lock:
            self._scripts[path] = script
        return self.base_url + path

    def to(self, url: str) -> list[Received]:
        """The requests that arrived at `url`."""
        path = url.removeprefix(self.base_url)
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def answer(self, request: Received) -> Answer:
        with self._lock:
            self.requests.append(request)
            script = self._scripts.get(request.path)
            if script is None:
                return Answer(404)
            return script.pop(0) if len(script) > 1 else script[0]


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = receiver.answer(Received(self.path, headers, body))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
