"""Readiness: "this instance can do its work". PostgreSQL must answer within a short timeout with the
schema up to date; Redis is reported, and decides only when the service cannot work without it.

Without Redis the API still accepts messages (they stay pending and housekeeping enqueues them once the
broker is back) and the rate limiter fails open; taking every instance out of the load balancer for a
Redis blip would turn a degraded service into an outage. With RATE_LIMIT_FAIL_OPEN=false every request
needs Redis, so then it counts.
"""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from loguru import logger
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.health.models import CheckResult, CheckStatus, Readiness
from app.core.exceptions import ServiceUnavailableError

T = TypeVar("T")
OK = CheckResult(status="ok")


class HealthService:
    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        shipped_versions: frozenset[str],
        timeout: float,
        *,
        redis_required: bool,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.shipped_versions = shipped_versions
        self.timeout = timeout
        self.redis_required = redis_required

    async def readiness(self) -> Readiness:
        database, redis = await asyncio.gather(self._check_database(), self._check_redis())
        checks = {"database": database, "redis": redis}
        failing = {name: check for name, check in checks.items() if check.status == "failing"}
        if failing:
            summary = ", ".join(f"{name}: {check.detail}" for name, check in failing.items())
            per_check = {name: check.model_dump() for name, check in checks.items()}
            raise ServiceUnavailableError(f"Not ready ({summary}).", extensions={"checks": per_check})
        degraded = any(check.status == "degraded" for check in checks.values())
        return Readiness(status="degraded" if degraded else "ok", checks=checks)

    async def _check_database(self) -> CheckResult:
        try:
            applied = await self._within_timeout(self._applied_versions())
        except ProgrammingError:
            return CheckResult(status="failing", detail="not migrated (no schema_migrations table)")
        except Exception as exc:  # any failure of a dependency means "not ready"
            return self._failure("database", exc, required=True)
        # A newer schema is fine (a rolling deploy migrates before the old instances go); a missing one is not.
        missing = sorted(self.shipped_versions - applied)
        if missing:
            return CheckResult(status="failing", detail=f"migrations not applied: {', '.join(missing)}")
        return OK

    async def _check_redis(self) -> CheckResult:
        try:
            await self._within_timeout(self.redis.ping())
        except Exception as exc:
            return self._failure("redis", exc, required=self.redis_required)
        return OK

    async def _applied_versions(self) -> frozenset[str]:
        async with self.engine.connect() as connection:
            versions = await connection.scalars(text("SELECT version FROM schema_migrations"))
            return frozenset(str(version) for version in versions)

    async def _within_timeout(self, awaitable: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await awaitable

    def _failure(self, name: str, exc: Exception, *, required: bool) -> CheckResult:
        # The probe is public: name the failure, keep hosts and addresses in the log only.
        logger.warning("Readiness check {} failed: {!r}", name, exc)
        status: CheckStatus = "failing" if required else "degraded"
        if isinstance(exc, TimeoutError):
            return CheckResult(status=status, detail=f"no answer within {self.timeout}s")
        return CheckResult(status=status, detail=f"unreachable ({type(exc).__name__})")
