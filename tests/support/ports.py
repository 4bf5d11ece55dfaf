"""Local ports for tests that need nothing to listen (a server that accepts and never answers: silent.py)."""

import socket


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
