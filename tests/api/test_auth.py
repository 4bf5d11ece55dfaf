"""Authentication on the versioned API: denied by default, bearer tokens only, scopes per route."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends

from app.api.deps import authenticate, require_scopes
from app.core.config import Settings
from app.core.security import Principal
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem
from tests.support.tokens import token_for

# Test-only routes, behind the same router-level authentication as the real /api/v1.
scoped_router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])


@scoped_router.get("/test-scoped")
async def scoped(
    client: Annotated[Principal, Depends(require_scopes("webhooks:write", "messages:read"))],
) -> dict[str, str]:
    return {"sub": client.sub}


# The scope check without the router-level authentication, and before it in a route's own list.
unguarded_router = APIRouter(prefix="/test-unguarded")


@unguarded_router.get("/scoped-only")
async def scoped_only(client: Annotated[Principal, Depends(require_scopes("messages:read"))]) -> dict[str, str]:
    return {"sub": client.sub}


@unguarded_router.get("/scoped-first", dependencies=[Depends(require_scopes("messages:read")), Depends(authenticate)])
async def scoped_first() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
async def scoped_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(scoped_router)) as client:
        yield client


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic Y2xpZW50OnNlY3JldA==", "Bearer", "Bearer ", "Token abc.def.ghi"],
    ids=["absent", "empty", "basic", "bearer-alone", "bearer-blank", "other-scheme"],
)
async def test_no_bearer_token_is_401_with_a_bare_challenge(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await client.get("/api/v1/me", headers=headers)

    body = assert_problem(response, 401)
    # RFC 6750 section 3.1: no credentials, so no error code in the challenge.
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "e30.e30.", "not base64!.x.y", "eyJhbGciOiJIUzI1NiJ9"],
    ids=["one-part", "three-junk-parts", "empty-header", "bad-characters", "header-only"],
)
async def test_malformed_bearer_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_the_scheme_is_case_insensitive(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": f"bearer {token_for(settings)}"})

    assert response.status_code == 200


async def test_a_token_with_every_required_scope_passes(scoped_client: httpx.AsyncClient, settings: Settings) -> None:
    token = token_for(settings, "client-s", ("messages:read", "webhooks:write"))

    response = await scoped_client.get("/api/v1/test-scoped", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"sub": "client-s"}


async def test_a_missing_scope_is_403(scoped_client: httpx.AsyncClient, settings: Settings) -> None:
    token = token_for(settings, scopes=("messages:read", "webhooks:read"))

    response = await scoped_client.get("/api/v1/test-scoped", headers={"Authorization": f"Bearer {token}"})

    body = assert_problem(response, 403)
    assert body["detail"] == "The token lacks the scope(s): webhooks:write."
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="webhooks:write messages:read"'
    )


@pytest.mark.parametrize("path", ["/test-unguarded/scoped-only", "/test-unguarded/scoped-first"])
async def test_a_scope_check_authenticates_and_counts_the_request_once_wherever_it_stands(
    settings: Settings, path: str
) -> None:
    sub = f"once-{uuid.uuid4().hex}"
    reader = {"Authorization": f"Bearer {token_for(settings, sub, ('messages:read',))}"}
    writer = {"Authorization": f"Bearer {token_for(settings, sub, ('messages:write',))}"}
    async with serve(build_app(unguarded_router, RATE_LIMIT_PER_MINUTE=10)) as client:
        missing = await client.get(path)
        first = await client.get(path, headers=reader)
        second = await client.get(path, headers=reader)
        refused = await client.get(path, headers=writer)

    assert_problem(missing, 401)
    assert first.status_code == 200, first.text
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in (first, second, refused)]
    assert remaining[1:] == [remaining[0] - 1, remaining[0] - 2]  # one hit per request, not one per check
    assert_problem(refused, 403)


async def test_scopes_are_checked_after_authentication(scoped_client: httpx.AsyncClient) -> None:
    response = await scoped_client.get("/api/v1/test-scoped")

    assert_problem(response, 401)


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in document["paths"]["/api/v1/me"]["get"]["security"]
    assert "security" not in document["paths"]["/health/live"]["get"]


MALFORMED_JSON = b"{bad"


def json_headers(authorization: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


@pytest.mark.parametrize("authorization", [None, "Bearer garbage"], ids=["no-token", "garbage-token"])
async def test_a_body_that_is_not_json_is_422_before_the_token_is_looked_at(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    # The rule (docs/decisions.md): JSON syntax is checked first, by FastAPI, and says nothing about the API.
    response = await client.post("/api/v1/messages", content=MALFORMED_JSON, headers=json_headers(authorization))

    body = assert_problem(response, 422)
    assert body["errors"] == [{"loc": ["body", 1], "msg": "JSON decode error", "type": "json_invalid"}]
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("authorization", [None, "Bearer garbage"], ids=["no-token", "garbage-token"])
async def test_a_json_body_that_breaks_the_schema_is_401_without_a_valid_token(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    # Past syntax, authentication comes first: an anonymous caller learns nothing of the body's rules.
    response = await client.post("/api/v1/messages", json={"event": 1}, headers=json_headers(authorization))

    body = assert_problem(response, 401)
    assert "errors" not in body


async def test_malformed_json_with_a_valid_token_is_422(client: httpx.AsyncClient, settings: Settings) -> None:
    headers = json_headers(f"Bearer {token_for(settings)}")

    response = await client.post("/api/v1/messages", content=MALFORMED_JSON, headers=headers)

    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("POST", "/api/v1/messages", {"event": 1}),
        ("GET", "/api/v1/messages/not-a-uuid", None),
        ("GET", "/api/v1/webhooks?limit=0", None),
    ],
    ids=["invalid-fields", "invalid-path", "invalid-query"],
)
async def test_any_invalid_request_without_a_token_is_401(
    client: httpx.AsyncClient, method: str, path: str, json: dict[str, int] | None
) -> None:
    response = await client.request(method, path, json=json)

    assert_problem(response, 401)
