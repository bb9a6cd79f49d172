# One entry for everything: `make demo` (set up and run the demo) and `make test` (set up and run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo up test test-fast bench asyncapi clean

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

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not postgres" tests/unit

bench: setup
	$(BIN)/reintegration bench intake

asyncapi: setup
	$(BIN)/reintegration asyncapi

clean:
	rm -rf data .pytest_cache .hypothesis
