"""Logging for the API and the worker: Loguru, one format, request/task/trace ids, secrets scrubbed.

`configure_logging(settings)` is the only setup. It is idempotent (the API calls it per app, the worker per
process) and routes the standard library's logging (uvicorn, SQLAlchemy, Celery, httpx) into Loguru.
Every record passes `_patch`, which adds the context ids and scrubs secrets from the message and the extra
fields; the sink scrubs the finished line once more (tracebacks included) before writing it to stderr.
"""

import inspect
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC
from types import FrameType
from typing import TYPE_CHECKING, Any

from loguru import logger
from opentelemetry import trace
from pydantic import SecretStr

from app.core.config import Settings
from app.core.context import get_request_id

if TYPE_CHECKING:
    from loguru import Message, Record

REDACTED = "[REDACTED]"
# Shorter configured secrets (a local "postgres" password) would match ordinary words in every line.
MIN_LITERAL_SECRET_LENGTH = 12
# Extra fields whose value is dropped whole, whatever it looks like.
SENSITIVE_KEY = re.compile(r"authorization|cookie|passw(or)?d|secret|token|signature|api[-_]?key", re.IGNORECASE)
# Shown in the text format when present, in this order.
CONTEXT_KEYS = ("request_id", "task_id", "trace_id")
# Libraries that log every statement or request: quiet unless LOG_LEVEL is DEBUG.
VERBOSE_LOGGERS = {"sqlalchemy.engine": logging.INFO, "httpx": logging.DEBUG, "httpcore": logging.DEBUG}
# Loggers their libraries give handlers of their own; ours must be the only output.
ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi", "celery", "celery.task", "celery.redirected")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values, wherever they are quoted: "Bearer <token>", "Basic <credentials>".
    (re.compile(r"\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # JWTs (their base64url JSON header always starts with "eyJ"), e.g. in a query string.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
    # Standard Webhooks signing secrets and signatures ("v1,<base64 HMAC-SHA256>").
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),
    (re.compile(r"\bv1,[A-Za-z0-9+/]{16,}={0,2}"), f"v1,{REDACTED}"),
)


class Redactor:
    """Replaces secrets in text: well-known token shapes, plus the literal values of configured secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literals = sorted({s for s in secrets if len(s) >= MIN_LITERAL_SECRET_LENGTH}, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, literals))) if literals else None

    def text(self, text: str) -> str:
        if self._literals is not None:
            text = self._literals.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any, key: str = "") -> Any:
        """`value` with every string in it scrubbed (recursing into dicts, lists and tuples)."""
        if key and SENSITIVE_KEY.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


_redactor = Redactor()
_configured: tuple[str, str, tuple[str, ...]] | None = None
_handler_id: int | None = None


def redact(value: Any) -> Any:
    """Scrub `value` with the secrets of the current configuration (also used for Sentry events)."""
    return _redactor.value(value)


class InterceptHandler(logging.Handler):
    """Hands standard-library log records to Loguru, attributed to the code that logged them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Skip this method and the logging module's frames: Loguru then reports the caller's module and line.
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings) -> None:
    """Send every log line, ours and the libraries', through one Loguru sink on stderr.

    Text in `local`, one JSON object per line elsewhere (LOG_FORMAT overrides); LOG_LEVEL filters.
    Calling it again with the same settings changes nothing.
    """
    global _configured, _handler_id, _redactor
    level = settings.LOG_LEVEL.upper()
    log_format = settings.LOG_FORMAT or ("text" if settings.APP_ENVIRONMENT == "local" else "json")
    secrets = _secret_values(settings)
    if _configured == (level, log_format, secrets):
        return
    level_no = logger.level(level).no  # raises ValueError for an unknown LOG_LEVEL

    _redactor = Redactor(secrets)
    # The first time, drop Loguru's default stderr handler; later, only our own (leave others' sinks alone).
    if _handler_id is None:
        logger.remove()
    else:
        logger.remove(_handler_id)
    logger.configure(patcher=_patch)
    # diagnose=False in both: it would print local variables (tokens, secrets) into tracebacks.
    if log_format == "json":
        _handler_id = logger.add(_write_json, level=level, format="{message}", backtrace=False, diagnose=False)
    else:
        _handler_id = logger.add(
            _write_text, level=level, format=_text_format, colorize=sys.stderr.isatty(), backtrace=False, diagnose=False
        )
    _route_standard_logging(level_no)
    _configured = (level, log_format, secrets)


def _secret_values(settings: Settings) -> tuple[str, ...]:
    values = (getattr(settings, name) for name in type(settings).model_fields)
    return tuple(sorted(v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()))


def _route_standard_logging(level_no: int) -> None:
    root = logging.getLogger()
    if not any(isinstance(handler, InterceptHandler) for handler in root.handlers):
        root.handlers = [InterceptHandler()]
    root.setLevel(level_no)
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers = []
        routed.propagate = True
    # Our request-context middleware writes the access log (with route, client and request id).
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    for name, verbose_level in VERBOSE_LOGGERS.items():
        logging.getLogger(name).setLevel(verbose_level if level_no <= logging.DEBUG else logging.WARNING)


def _patch(record: "Record") -> None:
    extra = record["extra"]
    if "request_id" not in extra and (request_id := get_request_id()) is not None:
        extra["request_id"] = request_id
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        extra["trace_id"] = trace.format_trace_id(span_context.trace_id)
        extra["span_id"] = trace.format_span_id(span_context.span_id)
    record["message"] = _redactor.text(record["message"])
    for key, value in extra.items():
        extra[key] = _redactor.value(value, key)


def _text_format(record: "Record") -> str:
    context = "".join(f" {key}={{extra[{key}]}}" for key in CONTEXT_KEYS if key in record["extra"])
    return (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
        f"<cyan>{{name}}</cyan>:<cyan>{{line}}</cyan>{context} - <level>{{message}}</level>\n{{exception}}"
    )


def _write_text(message: "Message") -> None:
    sys.stderr.write(_redactor.text(str(message)))


def _write_json(message: "Message") -> None:
    sys.stderr.write(_redactor.text(json_line(message.record)))


def json_line(record: "Record") -> str:
    """One log record as one line of JSON: standard fields, context in `extra`, a traceback if any."""
    document: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
        "process": record["process"].id,
        "extra": record["extra"],
    }
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        document["exception"] = "".join(traceback.format_exception(kind, value, tb))
    return json.dumps(document, default=str, ensure_ascii=False) + "\n"
