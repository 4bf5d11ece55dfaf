#!/bin/sh
# Container entrypoint: one image, four roles.
#
#   api      the HTTP API (uvicorn)                 PORT, WEB_CONCURRENCY
#   worker   the Celery worker                      CELERY_CONCURRENCY, LOG_LEVEL
#   beat     the Celery beat scheduler              LOG_LEVEL
#   migrate  apply pending dbmate migrations        DATABASE_URL, or DB_* settings
#
# Anything else is executed as given, e.g. `docker run IMAGE python -m app.something`.
# Every role is started with exec, so it runs as PID 1 and receives SIGTERM directly.
set -eu

# dbmate wants a URL; the app has separate DB_* settings. Build it from them the way
# Settings.dbmate_url does (same defaults, user and password percent-encoded), without importing
# the app: a migration job should not need the API's other settings. Set DATABASE_URL to
# override it, e.g. for sslmode=require against a managed database.
database_url() {
    python -c '
import os
from urllib.parse import quote

env = os.environ.get
auth = quote(env("DB_USERNAME", "postgres"), safe="")
if env("DB_PASSWORD"):
    auth += ":" + quote(env("DB_PASSWORD"), safe="")
host, port, name = env("DB_HOST", "localhost"), env("DB_PORT", "5432"), env("DB_NAME", "app")
print(f"postgres://{auth}@{host}:{port}/{name}?sslmode=disable")
'
}

command="${1:-api}"

case "$command" in
    api)
        exec uvicorn --factory app.main:create_app \
            --host 0.0.0.0 \
            --port "${PORT:-8080}" \
            --workers "${WEB_CONCURRENCY:-2}" \
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
        # (make migrate, or the compose "migrate" service), so don't dump it here.
        exec dbmate --migrations-dir db/migrations --no-dump-schema --wait up
        ;;
    *)
        exec "$@"
        ;;
esac
