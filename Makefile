# helpstream: `make run` starts everything locally; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
PYTEST_WORKERS ?= 2
# checkov (policy scan of deploy/kubernetes) pins packaging<24 and ~80 other packages: it gets
# a venv of its own inside .venv rather than a place in pyproject's dev extra.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(VENV)/checkov/.installed-$(CHECKOV_VERSION)

.PHONY: install run test lint typecheck unit integration e2e faults storm schemas bench clean

# promtool and prometheus come from Debian's `prometheus` package (rule, metrics and e2e
# tests; `make run`). Where nothing forbids it (no policy-rc.d), the package starts a daemon
# on :9090: stop exactly that one, right after installing it. The official AsyncAPI CLI
# (package.json, pinned in package-lock.json) validates docs/asyncapi.yaml in the tests.
install: $(STAMP)
	@command -v promtool >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus && { [ ! -x /etc/init.d/prometheus ] || /etc/init.d/prometheus stop >/dev/null 2>&1 || true; })
	@command -v chromium >/dev/null && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei)
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm)
	@[ node_modules/.installed -nt package-lock.json ] || (npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed)
	@[ -e $(CHECKOV_STAMP) ] || ($(PYTHON) -m venv $(VENV)/checkov && $(VENV)/checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION) && touch $(CHECKOV_STAMP))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,embedded]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: install
	$(BIN)/helpstream up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy --strict shared services helpstream bench

# Everything else in parallel, then the fault tests one at a time: they freeze or kill
# their own broker, database and services under load, and need the machine to themselves.
test: lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider -m "not faults and not storm"
	$(BIN)/pytest -q -s -p no:cacheprovider -m faults tests/faults

faults: install
	$(BIN)/pytest -q -s -p no:cacheprovider -m faults tests/faults

# The incident storm (2,200 tickets through every service), alone: 6-15 minutes here.
storm: install
	$(BIN)/pytest -q -s -p no:cacheprovider -m storm tests/e2e/test_incident_storm.py

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

schemas: install
	$(BIN)/helpstream schemas
	$(BIN)/helpstream asyncapi

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache .hypothesis

bench: install
	$(BIN)/python -m pip install -q -e ".[dev,embedded,bench]"
	$(BIN)/python -m bench $(BENCH)
