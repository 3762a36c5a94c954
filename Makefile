# modelmeter: `make demo` runs the whole stack with the demo model; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := prometheus prometheus-alertmanager chromium chromium-driver victoria-metrics
DEB_BINARIES := prometheus promtool prometheus-alertmanager amtool chromium chromedriver victoria-metrics

.PHONY: help setup system-deps demo up test lint typecheck check-deploy pytest bench clean

help:
	@echo "make demo   - set up, then run the whole stack with the demo model (dashboard: http://localhost:8050)"
	@echo "make test   - set up, then run lint, type checks, deploy checks and every test"
	@echo "make bench  - run the benchmarks (creates bench/.venv-peers for Evidently and NannyML)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -U pip
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

setup: $(STAMP)

# The real components the tests and the local stack run (Debian package names).
system-deps:
	@missing=""; for b in $(DEB_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	  else \
	    echo "missing:$$missing"; \
	    echo "run: sudo apt-get install -y --no-install-recommends $(DEB_PACKAGES)"; \
	    exit 1; \
	  fi; \
	fi

demo: setup system-deps
	$(VENV)/bin/modelmeter up --demo

up: setup system-deps
	$(VENV)/bin/modelmeter up

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: setup
	$(VENV)/bin/mypy

check-deploy: setup system-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash deploy/check.sh

pytest: setup system-deps
	$(VENV)/bin/pytest

test: setup system-deps lint typecheck check-deploy pytest

bench: setup
	$(PY) bench/engine.py
	$(PY) bench/ingest.py
	$(PY) bench/dashboard.py
	$(PY) bench/sdk.py
	$(PY) bench/store.py
	$(PY) bench/detection.py
	$(PY) bench/soak.py --duration $${SOAK_DURATION:-30m}

clean:
	rm -rf $(VENV) bench/.venv-peers .pytest_cache .mypy_cache .ruff_cache
