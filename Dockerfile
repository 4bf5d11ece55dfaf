# Application image: API, Celery worker, Celery beat and migrations (see entrypoint.sh).
#
#   docker build -t fastapi-postgres-stack .
#   docker run --rm -p 8080:8080 --env-file .env fastapi-postgres-stack          # api
#   docker run --rm --env-file .env fastapi-postgres-stack worker                # or beat, migrate
#
# Both stages use the same base image, so the virtualenv built in the first one
# (whose interpreter links to /usr/local/bin/python3.11) runs unchanged in the second.
# Kept compatible with the classic builder (no BuildKit-only syntax), so that
# docker-compose v1 can build it too.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the locked main dependencies into /opt/venv -------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Poetry only exports poetry.lock to a hashed requirements file; it lives in a throwaway venv
# and never reaches the runtime image.
RUN python -m venv /opt/poetry \
    && /opt/poetry/bin/pip install "poetry>=2.1,<3" "poetry-plugin-export>=1.9"

WORKDIR /src
COPY pyproject.toml poetry.lock ./

# Main dependencies only (no dev group). --require-hashes makes pip install exactly what the lock
# says, and --no-deps stops it from resolving anything on its own. The runtime venv is created
# without pip (and setuptools): the throwaway venv's pip installs into it (--python), so the image
# holds exactly the locked set and no installer.
RUN /opt/poetry/bin/poetry export --only main --format requirements.txt --output requirements.txt \
    && python -m venv --without-pip /opt/venv \
    && /opt/poetry/bin/pip --python /opt/venv/bin/python install --no-deps --require-hashes -r requirements.txt \
    && /opt/venv/bin/python -c "import uvicorn, celery, sqlalchemy, asyncpg" \
    && test ! -e /opt/venv/bin/pip

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}"

# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app

# Code and venv stay owned by root: the app user can read and run them, not change them.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app ./app
COPY db ./db
COPY entrypoint.sh ./entrypoint.sh
# The exec bit is set here as well as in git, for checkouts that lose it (e.g. on Windows).
# Bytecode is compiled now: the root filesystem may be read-only at run time (and
# PYTHONDONTWRITEBYTECODE is set anyway), so without it every start would compile the app again.
RUN chmod 0755 /app/entrypoint.sh \
    && python -m compileall -q /app/app

# Runs as this user with a read-only root filesystem if you like: the only path written at run
# time is /tmp (beat's schedule file, Python's temporary files); mount a tmpfs or emptyDir there.
# Multiprocessing (uvicorn workers, Celery's prefork pool) also uses /dev/shm, which the container
# runtime provides.
USER 10001:10001

EXPOSE 8080

# python:*-slim has no curl; urllib is enough. Only meaningful for the "api" command: compose
# disables it for the worker and beat services.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health/live', timeout=4)"]

ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["api"]
