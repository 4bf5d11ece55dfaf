"""The one way the tests get a token: signed with the settings' JWT_SECRET, as `make token` does."""

from collections.abc import Callable

from app.core.config import Settings
from app.core.security import SCOPES, create_access_token


def token_for(settings: Settings, sub: str = "client-a", scopes: tuple[str, ...] = SCOPES) -> str:
    """A one-hour token for client `sub` with `scopes` (every scope by default)."""
    return create_access_token(settings, sub, scopes)


def bearer(settings: Settings, sub: str = "client-a", scopes: tuple[str, ...] = SCOPES) -> dict[str, str]:
    """Authorization headers carrying `token_for(settings, sub, scopes)`."""
    return {"Authorization": f"Bearer {token_for(settings, sub, scopes)}"}


HeadersFactory = Callable[..., dict[str, str]]  # the `headers_for` fixture: (sub, scopes) -> headers
