# Everything runs from a virtualenv the Makefile creates; a fresh machine needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-quick clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/history-store demo

lint: $(INSTALLED)
	$(BIN)/ruff check history_store migrations tests bench examples
	$(BIN)/ruff format --check history_store migrations tests bench examples

typecheck: $(INSTALLED)
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest -q

test: lint typecheck unit

# Options for the benchmark: make bench BENCH_ARGS="--quick --only W1,W8"
BENCH_ARGS ?=

bench: $(INSTALLED)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(INSTALLED)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
