from app.core.config import Settings
from app.db.engine import create_engine


def test_statement_parameters_stay_out_of_errors_and_logs_unless_debugging() -> None:
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="INFO")).sync_engine.hide_parameters is True
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="debug")).sync_engine.hide_parameters is False


def test_pool_comes_from_settings() -> None:
    engine = create_engine(Settings(_env_file=None, DB_POOL_SIZE=3, DB_MAX_OVERFLOW=1))
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 1)  # type: ignore[attr-defined]
    assert engine.sync_engine.pool._pre_ping is True
