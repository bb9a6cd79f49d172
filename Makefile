# One entry for everything: `make demo` (set up and run the demo) and `make test` (set up, lint, type-check and
# run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo up test lint test-fast bench profile-setup asyncapi clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/reintegration demo

up: setup
	$(BIN)/reintegration up

# Lint and types first (seconds), then every test.
test: lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: setup
	$(BIN)/python -m pytest -m "not postgres" tests/unit

bench: setup
	$(BIN)/reintegration bench intake

# py-spy for the benchmarks' profiles (REINTEGRATION_BENCH_PYSPY=deadlines,intake reintegration bench e2e).
profile-setup: setup
	$(BIN)/python -m pip install --quiet -e ".[profile]"

asyncapi: setup
	$(BIN)/reintegration asyncapi

clean:
	rm -rf data .pytest_cache .hypothesis
