# Developer tooling, included by the Makefile (which defines VENV, PY, BIN and INSTALL_STAMP).
#
#   domain      scaffold a new domain: every layer, a migration, registrations and passing tests
#   openapi     regenerate docs/openapi.json, the API snapshot tests/test_openapi_snapshot.py checks
#   api-check   run the Bruno collection in bruno/ against a running API (needs Node.js 20+ for npx)

# Pinned, so that every machine runs the collection with the same CLI. Bump it deliberately.
BRUNO_CLI_VERSION := 4.1.0
API_URL ?= http://localhost:8080

.PHONY: domain openapi api-check

domain: $(INSTALL_STAMP) ## Scaffold a domain with every layer and tests: make domain name=invoice [table=invoices]
	@test -n "$(name)" || { echo "usage: make domain name=invoice [table=invoices]" >&2; exit 2; }
	@$(PY) -m scripts.scaffold_domain --name "$(name)" $(if $(table),--table "$(table)")

openapi: $(INSTALL_STAMP) ## Regenerate docs/openapi.json (the API snapshot the tests compare against)
	@$(PY) -m scripts.export_openapi

# A fresh client (sub bruno-<time>-<random>) per run: runs never see each other's data.
api-check: $(INSTALL_STAMP) ## Run the Bruno collection against the running API (make run; or API_URL=...)
	@command -v npx >/dev/null 2>&1 || { echo "api-check needs Node.js 20+ (npx): https://nodejs.org/" >&2; exit 1; }
	@$(PY) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health/live", timeout=3)' \
		"$(API_URL)" 2>/dev/null || { echo "No API answers at $(API_URL): start it with 'make run' (or set API_URL)." >&2; exit 1; }
	@set -o pipefail; \
	token="$$($(PY) -m scripts.token --sub "bruno-$$(date +%s)-$$RANDOM" | tail -1)" || exit 1; \
	cd bruno && npx --yes @usebruno/cli@$(BRUNO_CLI_VERSION) run \
		--env local --env-var "baseUrl=$(API_URL)" --env-var "token=$$token" --sandbox developer
