"""Security headers on every response, as a pure ASGI middleware."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.middleware.raw_headers import encode, set_headers

BASE_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS_VALUE = "max-age=63072000; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        headers = dict(BASE_HEADERS)
        # HSTS only where TLS terminates in front of us; on local http it would pin browsers to https.
        if hsts:
            headers["Strict-Transport-Security"] = HSTS_VALUE
        self.raw_headers = encode(headers)  # once, not per response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, self.raw_headers, replace=False)  # a response's own value stays
            await send(message)

        await self.app(scope, receive, send_with_headers)
