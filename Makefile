# Every target reads settings through app/core/config.py (environment, then .env, then defaults);
# none of them sets a setting, so whatever you export wins.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
POETRY_HOME := .poetry
POETRY := $(or $(shell command -v poetry 2>/dev/null),$(POETRY_HOME)/bin/poetry)
INSTALL_STAMP := $(VENV)/.installed
DBMATE = DATABASE_URL="$$($(PY) -m scripts.database_url)" $(BIN)/dbmate --migrations-dir db/migrations --schema-file db/schema.sql
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install lock run worker beat run-celery dev test lint format migrate migration token \
        openapi domain api-check bench services-check

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(POETRY_HOME)/bin/poetry:
	python3 -m venv $(POETRY_HOME)
	$(POETRY_HOME)/bin/pip install --quiet "poetry>=2.1,<3" "poetry-plugin-export>=1.9"

# Install exactly the locked set (with hashes) into .venv: the same path CI and the Docker image take.
$(INSTALL_STAMP): poetry.lock pyproject.toml | $(POETRY)
	@$(POETRY) export --help >/dev/null 2>&1 || { echo "poetry-plugin-export is missing: poetry self add poetry-plugin-export" >&2; exit 1; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(POETRY) export --with dev --format requirements.txt --output $(VENV)/requirements.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(VENV)/requirements.txt
	touch $@

install: $(INSTALL_STAMP) ## Install the locked dependencies into .venv

lock: | $(POETRY) ## Re-resolve dependencies into poetry.lock
	$(POETRY) lock

services-check: $(INSTALL_STAMP)
	@$(PY) -m scripts.check_services

migrate: $(INSTALL_STAMP) ## Create the database if missing and apply migrations
	$(DBMATE) --wait up

migration: $(INSTALL_STAMP) ## Create a migration: make migration name=add_things
	@test -n "$(name)" || { echo "usage: make migration name=add_things" >&2; exit 2; }
	$(BIN)/dbmate --migrations-dir db/migrations new $(name)

run: migrate ## Migrate, then serve the API with reload on :8080
	$(BIN)/uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8080 --reload

worker: $(INSTALL_STAMP) ## Run the Celery worker
	$(BIN)/celery -A app.worker.main worker --loglevel=INFO

beat: $(INSTALL_STAMP) ## Run Celery beat (housekeeping schedule)
	$(BIN)/celery -A app.worker.main beat --loglevel=INFO --schedule /tmp/celerybeat-schedule

run-celery: $(INSTALL_STAMP) ## Run the worker with an embedded beat
	$(BIN)/celery -A app.worker.main worker --beat --loglevel=INFO --schedule /tmp/celerybeat-schedule

dev: migrate ## API + worker + beat in one command; Ctrl-C stops all three
	@trap 'kill 0' INT TERM EXIT; \
	$(BIN)/celery -A app.worker.main worker --beat --loglevel=INFO --schedule /tmp/celerybeat-schedule & \
	$(BIN)/uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8080 --reload & \
	wait

test: services-check ## Run the test suite against the real PostgreSQL and Redis, with coverage
	$(BIN)/pytest -n $(PYTEST_WORKERS) --cov --cov-report=term-missing:skip-covered

lint: $(INSTALL_STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALL_STAMP) ## Fix lint findings and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: services-check ## HTTP benchmark: the API vs a bare baseline under wrk (own database; needs wrk)
	$(PY) -m bench.harness

.PHONY: bench-worker
bench-worker: services-check ## Worker throughput end to end: API, worker, local receiver (own database, ~5 min)
	$(PY) -m bench.worker

token: $(INSTALL_STAMP) ## Print a one-hour development token with every scope: make token sub=alice
	@$(PY) -m scripts.token --sub "$(or $(sub),dev-client)"

-include make/*.mk
