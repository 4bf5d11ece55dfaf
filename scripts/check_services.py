"""Fail fast, with the fix, when PostgreSQL or Redis is not reachable (used by `make test`)."""

import socket
import sys

from app.core.config import get_settings

HINTS = {
    "PostgreSQL": "pg_ctlcluster 15 main start   (or: docker compose up -d db)",
    "Redis": 'redis-server --daemonize yes --save "" --appendonly no   (or: docker compose up -d redis)',
}


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    settings = get_settings()
    targets = {"PostgreSQL": (settings.DB_HOST, settings.DB_PORT), "Redis": (settings.REDIS_HOST, settings.REDIS_PORT)}
    down = [name for name, (host, port) in targets.items() if not reachable(host, port)]
    for name in down:
        host, port = targets[name]
        print(f"{name} is not reachable at {host}:{port}. Start it, e.g.: {HINTS[name]}", file=sys.stderr)
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
