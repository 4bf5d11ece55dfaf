# Docker targets, included by the Makefile.
#
#   compose-up      build the images and start the stack (db, redis, migrate, api, worker, beat)
#   compose-down    stop and remove its containers (the database volume is kept)
#   compose-smoke   build, start the whole stack, deliver one signed webhook, tear it all down
#   docker-check    validate docker-compose.yml and lint every Dockerfile; needs no Docker engine

VENV ?= .venv

# `docker compose` (v2 plugin) when present, else the standalone docker-compose. Another
# implementation of the compose file: COMPOSE=... (make compose-smoke COMPOSE=...).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# apt-get needs root: use sudo only when we are not root already.
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)
DOCKERFILES = Dockerfile $(wildcard docker/*/Dockerfile)

.PHONY: compose-up compose-down compose-smoke docker-check

compose-up: ## Build and start the whole stack in Docker (API on :8080)
	@test -f .env || { echo "No .env file: run 'cp .env.example .env' first." >&2; exit 1; }
	$(COMPOSE) up --build -d
	@echo "Stack is starting: '$(COMPOSE) ps' for status, '$(COMPOSE) logs -f api' for logs."

compose-down: ## Stop the Docker stack (keeps the database volume; add -v by hand to drop it)
	$(COMPOSE) down

# Runs beside anything already on the machine (its own project name, free host ports, its own
# settings file; .env is not read), and removes all it created. See docker/compose_smoke.py for the
# knobs (IMAGE_BUDGET_MB, STARTUP_BUDGET_SECONDS, SMOKE_KEEP=1).
compose-smoke: $(INSTALL_STAMP) ## Build and start the stack in Docker, deliver one signed webhook, tear down
	COMPOSE="$(COMPOSE)" $(PY) docker/compose_smoke.py

# Validates with docker-compose v1 (Debian's package) because it needs no engine and is the oldest
# parser the file must satisfy. compose needs .env (env_file); on a fresh clone (CI) a temporary
# copy of .env.example stands in for it and is removed afterwards, even on failure.
docker-check: install ## Validate docker-compose.yml and hadolint the Dockerfiles (no engine needed)
	@command -v docker-compose >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null 2>&1 || { echo "docker-compose is missing and apt-get is not available: install docker-compose." >&2; exit 1; }; \
		echo "Installing docker-compose (Debian package)..."; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	}
	@set -eu; \
	if [ ! -f .env ]; then \
		trap 'rm -f .env' EXIT INT TERM; \
		cp .env.example .env; \
		echo "docker-check: no .env, validating with a temporary copy of .env.example"; \
	fi; \
	docker-compose -f docker-compose.yml config -q; \
	echo "docker-compose.yml: valid"
	$(VENV)/bin/hadolint --failure-threshold error $(DOCKERFILES)
