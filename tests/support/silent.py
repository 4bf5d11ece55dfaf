"""A server that accepts connections, reads whatever arrives and never answers: a hung Redis or PostgreSQL."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def silent_server() -> Iterator[int]:
    """Listen on 127.0.0.1 (a free port, yielded) until the block ends; every connection is accepted and
    held open, what the client sends is read and dropped, and nothing is ever sent back."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    stopping = threading.Event()
    held: list[socket.socket] = []

    def drain(connection: socket.socket) -> None:
        connection.settimeout(0.05)
        while not stopping.is_set():
            try:
                if not connection.recv(65536):
                    return  # the client hung up
            except TimeoutError:
                continue
            except OSError:
                return

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)
            threading.Thread(target=drain, args=(connection,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        acceptor.join()
        listener.close()
        for connection in held:
            connection.close()
