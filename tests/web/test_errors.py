"""Every error is an RFC 9457 problem with the request id; a 500 reveals nothing of the failure."""

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.config import Settings
from app.core.exceptions import (
    AppError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from app.web.middleware.request_context import UNEXPECTED_ERROR_DETAIL
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem
from tests.support.tokens import bearer

SECRET_DETAIL = "password=hunter2 at db.internal:5432"


class Widget(BaseModel):
    name: str = Field(min_length=3)
    size: int = Field(ge=1)


errors_router = APIRouter(prefix="/test")
DOMAIN_ERRORS: dict[str, AppError] = {
    "not-found": NotFoundError("No webhook 42."),
    "conflict": ConflictError("The key was used for another message."),
    "rule": ValidationFailedError("Targets must be https."),
    "rate": RateLimitedError("Slow down.", headers={"Retry-After": "7"}),
}


@errors_router.post("/widgets")
async def create_widget(widget: Widget) -> Widget:
    return widget


@errors_router.get("/widgets/{widget_id}")
async def read_widget(widget_id: int) -> dict[str, int]:
    return {"id": widget_id}


@errors_router.get("/domain/{name}")
async def domain_error(name: str) -> None:
    raise DOMAIN_ERRORS[name]


@errors_router.get("/field")
async def field_in_query(cursor: str) -> None:
    raise ValidationFailedError("That cursor is wrong." if cursor else "No cursor.", field="cursor")


@errors_router.post("/field")
async def field_in_body(request: Request) -> None:
    await request.body()
    raise ValidationFailedError("That url is wrong.", field="url")


@errors_router.get("/http-exception")
async def http_exception() -> None:
    raise HTTPException(status_code=418, detail="Short and stout.", headers={"X-Teapot": "yes"})


@errors_router.get("/unavailable")
async def unavailable() -> None:
    raise ServiceUnavailableError("Down.", extensions={"status": "failing", "detail": "x", "checks": {"redis": "down"}})


@errors_router.get("/boom")
async def boom() -> None:
    raise RuntimeError(SECRET_DETAIL)


@pytest.fixture(scope="module")
async def errors_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(errors_router)) as client:
        yield client


async def test_unexpected_error_is_a_generic_500(errors_client: httpx.AsyncClient) -> None:
    response = await errors_client.get(
        "/test/boom", headers={"X-Request-ID": "report-me", "Origin": "http://localhost:3000"}
    )

    body = assert_problem(response, 500)
    assert body["detail"] == UNEXPECTED_ERROR_DETAIL
    assert body["request_id"] == "report-me"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    # Still behind the outer middleware: security and CORS headers.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


@pytest.mark.parametrize(("name", "status"), [("not-found", 404), ("conflict", 409), ("rule", 422), ("rate", 429)])
async def test_domain_errors_map_to_their_status(errors_client: httpx.AsyncClient, name: str, status: int) -> None:
    response = await errors_client.get(f"/test/domain/{name}")

    body = assert_problem(response, status)
    assert body["detail"] == DOMAIN_ERRORS[name].detail
    assert body["title"] == DOMAIN_ERRORS[name].title


async def test_domain_error_headers_are_sent(errors_client: httpx.AsyncClient) -> None:
    response = await errors_client.get("/test/domain/rate")

    assert response.headers["retry-after"] == "7"


async def test_extensions_cannot_replace_standard_members(errors_client: httpx.AsyncClient) -> None:
    body = assert_problem(await errors_client.get("/test/unavailable"), 503)

    assert body["detail"] == "Down."
    assert body["checks"] == {"redis": "down"}


async def test_http_exceptions_keep_status_detail_and_headers(errors_client: httpx.AsyncClient) -> None:
    response = await errors_client.get("/test/http-exception")

    body = assert_problem(response, 418)
    assert body["detail"] == "Short and stout."
    assert body["title"] == "I'm a Teapot"
    assert response.headers["x-teapot"] == "yes"


async def test_method_not_allowed_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health/live")

    body = assert_problem(response, 405)
    assert response.headers["allow"] == "GET"
    assert body["detail"] == "Method DELETE is not allowed on /health/live."


async def test_405_allow_names_every_route_at_the_path(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    # /api/v1/webhooks is served by two routes (list and create); Starlette alone names only the first.
    response = await client.put("/api/v1/webhooks", headers=auth_headers)

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


async def test_body_validation_is_422_with_field_errors(errors_client: httpx.AsyncClient) -> None:
    response = await errors_client.post("/test/widgets", json={"name": "x", "size": 0, "token": "do-not-echo"})

    body = assert_problem(response, 422)
    errors = {tuple(error["loc"]): error for error in body["errors"]}
    assert set(errors) == {("body", "name"), ("body", "size")}
    assert errors[("body", "name")]["type"] == "string_too_short"
    assert errors[("body", "size")]["type"] == "greater_than_equal"
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    assert "body.name" in body["detail"]
    assert "do-not-echo" not in response.text


async def test_a_missing_body_is_422(errors_client: httpx.AsyncClient) -> None:
    body = assert_problem(await errors_client.post("/test/widgets"), 422)

    assert body["errors"][0]["loc"] == ["body"]
    assert body["errors"][0]["type"] == "missing"


async def test_malformed_json_is_422(errors_client: httpx.AsyncClient) -> None:
    response = await errors_client.post(
        "/test/widgets", content=b'{"name": "abc", ', headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


async def test_path_parameter_validation_is_422(errors_client: httpx.AsyncClient) -> None:
    body = assert_problem(await errors_client.get("/test/widgets/not-a-number"), 422)

    assert body["errors"][0]["loc"] == ["path", "widget_id"]


async def test_a_domain_error_about_a_field_names_where_the_request_carried_it(
    errors_client: httpx.AsyncClient,
) -> None:
    in_query = assert_problem(await errors_client.get("/test/field?cursor=abc"), 422)
    in_body = assert_problem(await errors_client.post("/test/field", json={"url": "x"}), 422)

    assert in_query["errors"] == [{"loc": ["query", "cursor"], "msg": "That cursor is wrong.", "type": "value_error"}]
    assert in_body["errors"] == [{"loc": ["body", "url"], "msg": "That url is wrong.", "type": "value_error"}]
    assert in_body["detail"] == "That url is wrong."


async def test_a_request_that_gets_no_database_connection_in_time_is_503_with_retry_after(
    settings: Settings,
) -> None:
    app = build_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_SECONDS=0.2)
    path = f"/api/v1/messages/{uuid.uuid4()}"
    async with serve(app) as client:
        async with app.state.engine.connect() as held:  # the pool's only connection, busy elsewhere
            await held.execute(text("SELECT 1"))
            started = time.monotonic()
            response = await client.get(path, headers=bearer(settings))
            waited = time.monotonic() - started

        body = assert_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert "database connection" in body["detail"]
        assert waited < 2  # the pool timeout, not a hang
        assert_problem(await client.get(path, headers=bearer(settings)), 404)  # served again once one is free
