#!/bin/sh
# Container entrypoint: one image, four roles.
#
#   api      the HTTP API (uvicorn)                 PORT, WEB_CONCURRENCY, GRACEFUL_SHUTDOWN_SECONDS
#   worker   the Celery worker                      CELERY_CONCURRENCY, LOG_LEVEL
#   beat     the Celery beat scheduler              LOG_LEVEL
#   migrate  apply pending dbmate migrations        DATABASE_URL, or DB_* settings and DB_SSLMODE
#
# Anything else is executed as given, e.g. `docker run IMAGE python -m app.something`.
# Every role is started with exec, so it runs as PID 1 and receives SIGTERM directly:
#   api     stops accepting connections, then waits up to GRACEFUL_SHUTDOWN_SECONDS (default 20)
#           for requests in flight; give the container longer than that to stop.
#   worker  Celery's warm shutdown: running tasks finish (at most CELERY_TASK_TIME_LIMIT_SECONDS);
#           tasks are acknowledged late, so one killed mid-way is delivered again.
# These variables configure the processes, not the app: the app's settings are in .env.example.
set -eu

# dbmate wants a URL; the app has separate DB_* settings. Build it from them the way
# Settings.dbmate_url does (same defaults, user and password percent-encoded), without importing
# the app: a migration job should not need the API's other settings. DB_SSLMODE (default disable,
# like Settings.dbmate_url) is the libpq sslmode, e.g. require against a managed database; or set
# DATABASE_URL to override the whole URL (keep a lock_timeout in it).
database_url() {
    python -c '
import os
from urllib.parse import quote

env = os.environ.get
auth = quote(env("DB_USERNAME", "postgres"), safe="")
if env("DB_PASSWORD"):
    auth += ":" + quote(env("DB_PASSWORD"), safe="")
host, port, name = env("DB_HOST", "localhost"), env("DB_PORT", "5432"), env("DB_NAME", "app")
sslmode = quote(env("DB_SSLMODE") or "disable", safe="")
lock_timeout = round(float(env("DB_MIGRATION_LOCK_TIMEOUT_SECONDS", "5")) * 1000)
print(f"postgres://{auth}@{host}:{port}/{name}?sslmode={sslmode}&options=-clock_timeout%3D{lock_timeout}")
'
}

command="${1:-api}"

case "$command" in
    api)
        exec uvicorn --factory app.main:create_app \
            --host 0.0.0.0 \
            --port "${PORT:-8080}" \
            --workers "${WEB_CONCURRENCY:-2}" \
            --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_SECONDS:-20}" \
            --ws none \
            --proxy-headers
        ;;
    worker)
        exec celery -A app.worker.main worker --loglevel="${LOG_LEVEL:-INFO}"
        ;;
    beat)
        # The image is read-only for the app user: keep beat's schedule state in /tmp.
        exec celery -A app.worker.main beat \
            --loglevel="${LOG_LEVEL:-INFO}" \
            --schedule=/tmp/celerybeat-schedule
        ;;
    migrate)
        DATABASE_URL="${DATABASE_URL:-$(database_url)}"
        export DATABASE_URL
        # The runtime image has no pg_dump, and db/schema.sql is maintained in the repo
        # (make migrate, or `docker compose run --rm schema`), so do not dump it here.
        exec dbmate --migrations-dir db/migrations --no-dump-schema --wait up
        ;;
    *)
        exec "$@"
        ;;
esac
