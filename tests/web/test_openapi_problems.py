"""OpenAPI declares the errors the API really answers: application/problem+json bodies of the Problem schema."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from app.api.problems import IDEMPOTENCY_CONFLICT, REDELIVERY_CONFLICT
from app.web.problem import PROBLEM_CONTENT_TYPE, Problem, problem_responses
from scripts.export_openapi import openapi_document
from tests.support.apps import build_app
from tests.support.problems import assert_problem

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
API_STATUSES = ("401", "403", "404", "413", "422", "429", "503")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any], prefix: str = "/") -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        if path.startswith(prefix):
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    yield method.upper(), path, operation


def problem_schema_of(operation: dict[str, Any], status: str) -> str:
    """The schema name an operation's `status` response references; it must be problem+json only."""
    response = operation["responses"][status]
    assert set(response["content"]) == {PROBLEM_CONTENT_TYPE}, response
    ref: str = response["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"]
    return ref.removeprefix("#/components/schemas/")


def test_every_api_operation_declares_its_errors_as_problems(document: dict[str, Any]) -> None:
    api_operations = list(operations(document, "/api/v1/"))

    assert len(api_operations) >= 10
    for method, path, operation in api_operations:
        for status in API_STATUSES:
            assert problem_schema_of(operation, status) == "Problem", (method, path, status)
        assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]
        assert operation["responses"]["429"]["headers"]["Retry-After"]


def test_no_operation_references_fastapis_validation_error(document: dict[str, Any]) -> None:
    text = json.dumps(document)

    assert "HTTPValidationError" not in text
    assert '"#/components/schemas/ValidationError"' not in text
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert set(response.get("content", {})) <= {PROBLEM_CONTENT_TYPE}, (method, path, status)


def test_readiness_declares_its_503_with_the_checks(document: dict[str, Any]) -> None:
    operation = document["paths"]["/health/ready"]["get"]

    assert problem_schema_of(operation, "503") == "ReadinessProblem"
    schema = document["components"]["schemas"]["ReadinessProblem"]
    assert "checks" in schema["required"]
    assert schema["properties"]["checks"]["additionalProperties"] == {"$ref": "#/components/schemas/CheckResult"}


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)

    assert {"#/components/schemas/Problem", "#/components/schemas/FieldError"} <= refs
    assert {ref.removeprefix("#/components/schemas/") for ref in refs} <= set(schemas)
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "request_id"}
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}


def test_the_conflict_responses_are_problems() -> None:
    for responses in (IDEMPOTENCY_CONFLICT, REDELIVERY_CONFLICT):
        assert set(responses) == {409}
        content = responses[409]["content"]
        assert content == {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_messaging_routes_declare_their_409(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/messages"]["post"]
    redeliver = document["paths"]["/api/v1/messages/{message_id}/redeliver"]["post"]

    for operation, conflict in ((create, "IDEMPOTENCY_CONFLICT"), (redeliver, "REDELIVERY_CONFLICT")):
        assert "409" in operation["responses"], f"declare it: responses={conflict} (app/api/problems.py)"
        assert problem_schema_of(operation, "409") == "Problem"


class TeapotProblem(Problem):
    pot: str


def test_a_route_can_declare_a_problem_model_of_its_own() -> None:
    router = APIRouter()

    @router.get("/teapot", responses=problem_responses(418, model=TeapotProblem))
    async def teapot() -> None:
        """Test-only route."""

    with_route = build_app(router).openapi()
    without_route = build_app().openapi()

    assert problem_schema_of(with_route["paths"]["/teapot"]["get"], "418") == "TeapotProblem"
    assert "pot" in with_route["components"]["schemas"]["TeapotProblem"]["required"]
    # Declared in this process, but only documented by the apps that reference it.
    assert "TeapotProblem" not in without_route["components"]["schemas"]


def test_two_problem_models_cannot_share_a_name() -> None:
    problem_responses(418, model=TeapotProblem)

    class TeapotProblem2(Problem):
        pot: int

    TeapotProblem2.__name__ = "TeapotProblem"  # as a model of the same name in another module would be

    with pytest.raises(ValueError, match="Two problem models are named TeapotProblem"):
        problem_responses(418, model=TeapotProblem2)


async def test_a_real_401_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/messages", json={"event": "order.created", "payload": {}})

    problem = Problem.model_validate(assert_problem(response, 401))
    assert problem.errors == []


async def test_a_real_422_is_a_problem_with_field_errors(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    headers = auth_headers

    response = await client.post("/api/v1/messages", json={"payload": "not an object"}, headers=headers)

    problem = Problem.model_validate(assert_problem(response, 422))
    assert {tuple(error.loc) for error in problem.errors} >= {("body", "event"), ("body", "payload")}
