# helpstream: `make run` starts everything locally; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: install run test lint typecheck unit integration e2e schemas bench clean

install: $(STAMP)

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

test: lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

schemas: install
	$(BIN)/helpstream schemas

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache .hypothesis

bench: install
	$(BIN)/python -m bench $(BENCH)
