"""A real identity provider's JWKS endpoint, on a local port: keys to sign with, rotation, failures."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jose import jwk, jwt

JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_pem: str
    public_pem: str
    public_jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private_pem, algorithm=self.alg, headers={"kid": kid or self.kid})


def _signing_key(kid: str, alg: str, private_key: PrivateKeyTypes) -> SigningKey:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = {**jwk.construct(public_pem, alg).to_dict(), "kid": kid, "use": "sig"}
    return SigningKey(kid=kid, alg=alg, private_pem=private_pem, public_pem=public_pem.decode(), public_jwk=public_jwk)


def rsa_signing_key(kid: str) -> SigningKey:
    return _signing_key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_signing_key(kid: str) -> SigningKey:
    return _signing_key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class JwksServer:
    """Serves `keys` as a JWKS; answers the next requests with `failures` (status codes) first."""

    keys: list[SigningKey]
    failures: list[int] = field(default_factory=list)
    document: Any = None  # when set, served as-is instead of the keys (a broken provider)
    requests: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rotate(self, *keys: SigningKey) -> None:
        self.keys = list(keys)

    def fail_next(self, status: int, times: int) -> None:
        self.failures.extend([status] * times)

    def _answer(self) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
            if self.failures:
                return self.failures.pop(0), b'{"error": "unavailable"}'
        document = self.document if self.document is not None else {"keys": [key.public_jwk for key in self.keys]}
        return 200, document if isinstance(document, bytes) else json.dumps(document).encode()

    @contextmanager
    def running(self) -> Iterator["JwksServer"]:
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = jwks._answer() if self.path == JWKS_PATH else (404, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no access log on stderr."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}{JWKS_PATH}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
