from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now in UTC (never `datetime.utcnow()`, which is naive)."""
    return datetime.now(UTC)
