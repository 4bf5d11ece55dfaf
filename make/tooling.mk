# Developer tooling, included by the Makefile (which defines VENV, PY, BIN and INSTALL_STAMP).
#
#   domain      scaffold a new domain: every layer, a migration, registrations and passing tests
#   openapi     regenerate docs/openapi.json, the API snapshot tests/test_openapi_snapshot.py checks
#   api-check   run the Bruno collection in bruno/ against a running API (needs Node.js 20+ for npx)
#   api-fuzz    fuzz a running API with Schemathesis, driven by docs/openapi.json (every check)

# Pinned, so that every machine runs the collection with the same CLI. Bump it deliberately.
BRUNO_CLI_VERSION := 4.1.0
# Schemathesis is a tool, not a dependency of the service: it lives in a venv of its own under .tools/,
# made on first use with this pinned version. Bump it deliberately.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS := .tools/schemathesis-$(SCHEMATHESIS_VERSION)/bin/st
API_URL ?= http://localhost:8080
API_FUZZ_EXAMPLES ?= 100

.PHONY: domain openapi api-check api-fuzz

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

$(SCHEMATHESIS):
	python3 -m venv .tools/schemathesis-$(SCHEMATHESIS_VERSION)
	.tools/schemathesis-$(SCHEMATHESIS_VERSION)/bin/pip install --quiet "schemathesis==$(SCHEMATHESIS_VERSION)"

# Every check Schemathesis has, against docs/openapi.json (the committed contract, not what the server says):
# a request the document admits must be accepted, one it forbids refused, every answer documented.
# Its thousands of requests exceed the default rate limit: serve the API with a larger one for it,
# e.g. RATE_LIMIT_PER_MINUTE=1000000 make run. A fresh client (sub fuzz-<time>-<random>) per run.
api-fuzz: $(INSTALL_STAMP) $(SCHEMATHESIS) ## Fuzz the running API with Schemathesis from docs/openapi.json (or API_URL=...)
	@$(PY) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health/live", timeout=3)' \
		"$(API_URL)" 2>/dev/null || { echo "No API answers at $(API_URL): start it with 'make run' (or set API_URL)." >&2; exit 1; }
	@set -o pipefail; \
	token="$$($(PY) -m scripts.token --sub "fuzz-$$(date +%s)-$$RANDOM" | tail -1)" || exit 1; \
	$(SCHEMATHESIS) run docs/openapi.json --url "$(API_URL)" --checks all --max-examples $(API_FUZZ_EXAMPLES) \
		--header "Authorization: Bearer $$token"
