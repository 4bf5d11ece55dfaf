from typing import Literal

from pydantic import BaseModel

CheckStatus = Literal["ok", "failing"]


class CheckResult(BaseModel):
    status: CheckStatus
    detail: str | None = None


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: CheckStatus
    checks: dict[str, CheckResult]
