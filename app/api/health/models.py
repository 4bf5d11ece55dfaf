from typing import Literal

from pydantic import BaseModel, Field

from app.web.problem import Problem

# "degraded": the dependency is failing, but this instance still does its work without it.
CheckStatus = Literal["ok", "degraded", "failing"]


class CheckResult(BaseModel):
    status: CheckStatus
    detail: str | None = None


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description='"degraded" while a dependency the instance can work without is failing; `checks` says which.'
    )
    checks: dict[str, CheckResult]


class ReadinessProblem(Problem):
    """The 503 of the readiness probe: a problem that also says how each check went."""

    checks: dict[str, CheckResult] = Field(description="Every check by name, the failing ones with a reason.")
