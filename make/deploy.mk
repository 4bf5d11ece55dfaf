# Kubernetes targets, included by the Makefile. Need no cluster.
#
#   deploy-check    render deploy/kubernetes with kustomize (every overlay, alone and with each
#                   component) and check it: Kubernetes schemas, settings against .env.example, the
#                   service's rules (single beat, grace periods, connection budget), checkov
#   deploy-render   print an overlay's manifests: make deploy-render overlay=production
#
# The tools (kubectl for kustomize, kubernetes-validate, checkov) live in a virtualenv of their own,
# pinned by deploy/requirements.txt: checkov's dependencies would conflict with the app's lock. It
# is created on first use in the user's cache, one per version of that file, so that later runs
# and fresh clones reuse it. DEPLOY_TOOLS=dir puts it elsewhere; DEPLOY_PYTHON picks the Python.

DEPLOY_PYTHON ?= python3
DEPLOY_REQUIREMENTS := deploy/requirements.txt
DEPLOY_TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/fastapi-postgres-stack/deploy-tools-$(shell \
	$(DEPLOY_PYTHON) -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:12])' \
	$(DEPLOY_REQUIREMENTS))
DEPLOY_STAMP = $(DEPLOY_TOOLS)/.installed

.PHONY: deploy-check deploy-render

# Created from scratch when the stamp is missing, so an interrupted install is never half reused.
# No prerequisite: the directory name already carries the hash of the pins, and a fresh clone's
# newer file times must not reinstall it.
$(DEPLOY_STAMP):
	@echo "deploy-check: installing the pinned tools into $(DEPLOY_TOOLS) (once per version of $(DEPLOY_REQUIREMENTS))"
	rm -rf "$(DEPLOY_TOOLS)"
	$(DEPLOY_PYTHON) -m venv "$(DEPLOY_TOOLS)"
	"$(DEPLOY_TOOLS)/bin/pip" install --quiet --disable-pip-version-check --no-deps -r $(DEPLOY_REQUIREMENTS)
	touch "$@"

deploy-check: $(DEPLOY_STAMP) ## Render and check the Kubernetes manifests (schemas, settings, rules, checkov)
	"$(DEPLOY_TOOLS)/bin/python" deploy/check.py

deploy-render: $(DEPLOY_STAMP) ## Print an overlay's rendered manifests: make deploy-render overlay=production
	@kubectl=$$(test -x "$(DEPLOY_TOOLS)/bin/kubectl" && echo "$(DEPLOY_TOOLS)/bin/kubectl" || echo kubectl); \
	"$$kubectl" kustomize deploy/kubernetes/overlays/$(or $(overlay),production)
