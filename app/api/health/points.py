"""Probes for an orchestrator: public, outside the versioned API and its rate limit."""

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import EngineDep, RedisDep, SettingsDep
from app.api.health.models import Liveness, Readiness, ReadinessProblem
from app.api.health.service import HealthService
from app.db.migrations import shipped_migration_versions
from app.web.problem import problem_responses

router = APIRouter(prefix="/health", tags=["health"])


def get_health_service(settings: SettingsDep, engine: EngineDep, redis: RedisDep) -> HealthService:
    return HealthService(
        engine,
        redis,
        shipped_migration_versions(),
        settings.HEALTH_CHECK_TIMEOUT_SECONDS,
        # Failing closed, the rate limiter refuses every request while Redis is down: then it is required.
        redis_required=not settings.RATE_LIMIT_FAIL_OPEN,
    )


HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]


@router.get("/live")
async def live() -> Liveness:
    """The process is up and serving requests."""
    return Liveness()


NOT_READY = problem_responses(
    503,
    model=ReadinessProblem,
    description="PostgreSQL (or Redis, when RATE_LIMIT_FAIL_OPEN=false) is unreachable, or the schema is behind; "
    "`checks` says which.",
)


@router.get("/ready", responses=NOT_READY)
async def ready(health: HealthServiceDep) -> Readiness:
    """This instance can do its work: PostgreSQL answers within a short timeout and the schema is fully migrated.

    Redis is checked too: while it fails the answer is still 200, with `status` "degraded" and the Redis check
    "degraded" (messages are accepted and queued once it is back); only when the rate limiter fails closed
    (RATE_LIMIT_FAIL_OPEN=false) does a failing Redis make the instance not ready.
    """
    return await health.readiness()
