# The Copier template's own tests, included by the Makefile; not copied into generated projects (copier.yml).
#
#   test-template   render the template (with and without the example) into temporary directories and run
#                   each generated project's make install, make lint and make test; then `copier update`
#                   from an older template version (tests/template, 6 to 11 min)
#
# Copier is a tool, not a dependency of the service: a pinned version in a venv of its own under the user's
# cache, made on first use. Bump it deliberately.
COPIER_VERSION := 9.19.1
COPIER_HOME := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/fastapi-postgres-stack/copier-$(COPIER_VERSION)
COPIER := $(COPIER_HOME)/bin/copier

.PHONY: test-template

$(COPIER):
	python3 -m venv $(COPIER_HOME)
	$(COPIER_HOME)/bin/pip install --quiet "copier==$(COPIER_VERSION)"

test-template: services-check $(COPIER) ## Render the Copier template both ways, run each project's lint and tests, and copier update
	COPIER="$(COPIER)" POETRY="$(abspath $(POETRY))" $(BIN)/pytest tests/template -m template -n 0 -p no:cacheprovider -v --durations=0
