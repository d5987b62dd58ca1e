# Two commands: `make demo` brings the engine up on demo data, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := .tools/bin/uv
GEO := .venv/bin/geo-engine
DEMO_USERS ?= 20000
DEMO_PROJECTS ?= 5000

.PHONY: help install services services-replica services-down demo test test-fast lint browser bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@scripts/bootstrap.sh $(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

# The map page's MapLibre GL JS, from the npm registry (web/package-lock.json), served by the engine.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@scripts/bootstrap.sh tool npm nodejs npm
	npm ci --prefix web --no-audit --no-fund
	@touch $@

install: .venv/.synced web/node_modules/.package-lock.json  ## install the engine in .venv (uv.lock) and the map's JS in web/ (package-lock.json)
	@scripts/bootstrap.sh lib libpangoft2-1.0.so.0 libpango-1.0-0 libpangoft2-1.0-0

services:  ## start PostGIS and Redis, and the NATS cluster with GEO_ENGINE_BROKER=nats (idempotent); writes .env
	@scripts/bootstrap.sh tool nats-server nats-server
	@scripts/services.sh up

services-replica:  ## start PostGIS, a hot standby of it (the API's reads) and Redis; writes .env
	@GEO_ENGINE_REPLICA=1 scripts/services.sh up

services-down:  ## stop PostGIS, Redis and the NATS cluster
	@scripts/services.sh down

demo: install services  ## load France, users and projects, show the retention loop, then serve the API and the map (Ctrl-C stops)
	$(GEO) db upgrade
	$(GEO) geo load
	$(GEO) fixtures load --users $(DEMO_USERS) --projects $(DEMO_PROJECTS) --seed 42
	@echo "Paris, Hôtel de Ville:"
	$(GEO) geo locate 48.8566 2.3522
	@scripts/demo.sh

lint: install  ## ruff, mypy and the import rules (import-linter)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache

browser:  ## Chromium for the map page's browser test (Debian's package)
	@scripts/bootstrap.sh tool chromium chromium

test: install services lint browser  ## the whole test suite, against real PostGIS, Redis and Chromium
	.venv/bin/pytest

test-fast: install services  ## the daily lane: every test but the slow and browser ones (no lint)
	.venv/bin/pytest -m "not slow and not browser"

bench: install services  ## benchmarks (figures go in bench/README.md)
	@scripts/bootstrap.sh tool wrk wrk
	$(GEO) bench placement --size 5000000 --json
	$(GEO) bench locate --size 10000 --json
	$(GEO) bench http --size 100000 --json
	$(GEO) bench audience --json

clean:  ## remove the virtualenv and the services' data (stop them first)
	rm -rf .venv .tools .services
