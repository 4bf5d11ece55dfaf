"""Readiness: PostgreSQL and Redis reachable within a short timeout, and the schema up to date."""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from loguru import logger
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.health.models import CheckResult, Readiness
from app.core.exceptions import ServiceUnavailableError

T = TypeVar("T")
OK = CheckResult(status="ok")


class HealthService:
    def __init__(self, engine: AsyncEngine, redis: Redis, expected_version: str | None, timeout: float) -> None:
        self.engine = engine
        self.redis = redis
        self.expected_version = expected_version
        self.timeout = timeout

    async def readiness(self) -> Readiness:
        database, redis = await asyncio.gather(self._check_database(), self._check_redis())
        checks = {"database": database, "redis": redis}
        failing = {name: check for name, check in checks.items() if check.status != "ok"}
        if failing:
            summary = ", ".join(f"{name}: {check.detail}" for name, check in failing.items())
            per_check = {name: check.model_dump() for name, check in checks.items()}
            raise ServiceUnavailableError(f"Not ready ({summary}).", extensions={"checks": per_check})
        return Readiness(status="ok", checks=checks)

    async def _check_database(self) -> CheckResult:
        try:
            version = await self._within_timeout(self._database_version())
        except Exception as exc:  # any failure of a dependency means "not ready"
            return self._failure("database", exc)
        if version != self.expected_version:
            detail = f"schema is at migration {version}, the code expects {self.expected_version}"
            return CheckResult(status="failing", detail=detail)
        return OK

    async def _check_redis(self) -> CheckResult:
        try:
            await self._within_timeout(self.redis.ping())
        except Exception as exc:
            return self._failure("redis", exc)
        return OK

    async def _database_version(self) -> str | None:
        async with self.engine.connect() as connection:
            version = await connection.scalar(text("SELECT max(version) FROM schema_migrations"))
            return None if version is None else str(version)

    async def _within_timeout(self, awaitable: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await awaitable

    def _failure(self, name: str, exc: Exception) -> CheckResult:
        # The probe is public: name the failure, keep hosts and addresses in the log only.
        logger.warning("Readiness check {} failed: {!r}", name, exc)
        if isinstance(exc, TimeoutError):
            return CheckResult(status="failing", detail=f"no answer within {self.timeout}s")
        return CheckResult(status="failing", detail=f"unreachable ({type(exc).__name__})")
