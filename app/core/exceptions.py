"""Domain errors. Services raise these; app/web/errors.py renders them as problem+json."""

from typing import Any, ClassVar


class AppError(Exception):
    """Base of every error the API answers on purpose; `status_code` and `title` shape the problem."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, extensions: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        # Extra problem members (RFC 9457 extensions), e.g. per-check results on a 503.
        self.extensions = extensions or {}


class AuthenticationError(AppError):
    status_code = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, token_sent: bool = True) -> None:
        # RFC 6750 section 3.1: a request without credentials gets the challenge but no error code.
        challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class PermissionDeniedError(AppError):
    status_code = 403
    title = "Forbidden"


class NotFoundError(AppError):
    status_code = 404
    title = "Not Found"


class ConflictError(AppError):
    status_code = 409
    title = "Conflict"


class ValidationFailedError(AppError):
    """A business rule rejected otherwise well-formed input.

    `field` names the input it is about, as the caller sent it (e.g. "url", "cursor"); the error handler
    places it in the request (body, query, ...) and lists it in the problem's `errors`.
    """

    status_code = 422
    title = "Unprocessable Content"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class RateLimitedError(AppError):
    status_code = 429
    title = "Too Many Requests"


class ServiceUnavailableError(AppError):
    status_code = 503
    title = "Service Unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot serve the request now (unreachable, overloaded, or a deadline passed): a 503 that
    tells the client when to try again. app/web/database_errors.py raises it for the driver's errors."""

    def __init__(
        self, detail: str = "The database is unavailable or did not answer in time.", *, retry_after: int = 5
    ) -> None:
        super().__init__(f"{detail} Retry in {retry_after} s.", headers={"Retry-After": str(retry_after)})
