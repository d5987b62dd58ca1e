# Two commands: `make demo` brings the engine up on demo data, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := .tools/bin/uv
GEO := .venv/bin/geo-engine
DEMO_USERS ?= 20000

.PHONY: help install services services-down demo test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@scripts/bootstrap.sh $(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

install: .venv/.synced  ## install the engine and its tools in .venv (from uv.lock)

services:  ## start PostGIS and Redis (idempotent); writes .env
	@scripts/services.sh up

services-down:  ## stop PostGIS and Redis
	@scripts/services.sh down

demo: install services  ## load France and a synthetic population, then show a locate
	$(GEO) db upgrade
	$(GEO) geo load
	$(GEO) fixtures load --users $(DEMO_USERS) --seed 42
	@echo "Paris, Hôtel de Ville:"
	$(GEO) geo locate 48.8566 2.3522
	@echo "The engine is up on demo data. Try: $(GEO) geo locate LAT LON, $(GEO) users show 1"

lint: install  ## ruff and mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: install services lint  ## the whole test suite, against real PostGIS and Redis
	.venv/bin/pytest

bench: install services  ## benchmarks (figures go in bench/README.md)
	$(GEO) bench placement --size 5000000 --json
	$(GEO) bench locate --size 10000 --json

clean:  ## remove the virtualenv and the services' data (stop them first)
	rm -rf .venv .tools .services
