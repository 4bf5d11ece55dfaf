"""The application under the ASGI lifespan protocol, as Uvicorn drives it, through every middleware."""

import gc
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts

from app.api.router import API_PREFIX, DOMAIN_ROUTERS
from app.clients.jwks import JwksClient
from app.clients.webhooks.target import DnsResolver, TargetGuard
from app.core.encryption import KeyRing
from app.core.security import TokenVerifier
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem


async def run_lifespan(app: Any) -> list[dict[str, Any]]:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_the_lifespan_starts_and_stops_through_the_middleware() -> None:
    app = build_app()

    sent = await run_lifespan(app)

    assert [message["type"] for message in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert isinstance(app.state.token_verifier, TokenVerifier)
    assert app.state.token_verifier.jwks is None
    assert app.state.token_verifier.algorithms == ["HS256"]


async def test_jwks_mode_is_wired_when_a_jwks_url_is_set() -> None:
    app = build_app(JWT_JWKS_URL="https://idp.example.com/.well-known/jwks.json")

    await run_lifespan(app)

    verifier = app.state.token_verifier
    assert isinstance(verifier.jwks, JwksClient)
    assert verifier.jwks.url == "https://idp.example.com/.well-known/jwks.json"
    assert verifier.algorithms == ["RS256", "ES256"]


async def test_docs_are_served_only_when_enabled() -> None:
    async with serve(build_app(DOCS_ENABLED=True)) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200

    async with serve(build_app(DOCS_ENABLED=False)) as client:
        assert_problem(await client.get("/openapi.json"), 404)
        assert_problem(await client.get("/docs"), 404)


async def test_the_target_guard_resolves_with_a_deadline_and_threads_of_its_own() -> None:
    app = build_app(WEBHOOK_DNS_TIMEOUT_SECONDS=1.5, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)

    await run_lifespan(app)

    guard = app.state.target_guard
    assert isinstance(guard, TargetGuard)
    assert not guard.allow_private
    assert isinstance(guard.resolver, DnsResolver)
    assert guard.resolver.timeout_seconds == 1.5
    assert isinstance(app.state.keyring, KeyRing)


async def test_the_test_suite_keeps_pythons_collector_thresholds() -> None:
    before = gc.get_threshold()

    async with serve(build_app()):
        assert gc.get_threshold() == before


def test_the_domains_are_matched_in_their_order_and_the_probes_last() -> None:
    # In the order FastAPI tries them (app/api/router.py); the docs' own routes come first when docs are on.
    every_path = [context.path or "" for context in iter_route_contexts(build_app().routes)]
    paths = [path for path in every_path if path.startswith((API_PREFIX, "/health/"))]

    first_route = DOMAIN_ROUTERS[0].routes[0]
    assert isinstance(first_route, APIRoute)
    assert paths[0] == API_PREFIX + first_route.path
    assert paths[-2:] == ["/health/live", "/health/ready"]
