# Poverty Insight Collaborative. Quick start: `make demo`, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export COLLAB_HOME ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(COLLAB_HOME)/dagster

OPENDP_POLARS_VENV := bench/.venv-opendp-polars

.PHONY: help install demo test dev lint format bench bench-utility clean

help:
	@echo "make demo   generate demo extracts and run the whole pipeline (workspace: $(COLLAB_HOME))"
	@echo "make test   install everything a test needs and run the whole test suite"
	@echo "make dev    open the Dagster UI on the same workspace (http://127.0.0.1:3000)"
	@echo "make lint   ruff"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make bench-utility  error, coverage and speed of the privacy engine against two baselines"

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/collab demo

test: install
	$(BIN)/pytest

dev: install
	$(BIN)/collab init
	$(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Baseline (b) of the utility benchmark: OpenDP's Polars Context pins polars 1.36.1, so it gets its own venv.
$(OPENDP_POLARS_VENV)/.installed: bench/opendp-polars-requirements.txt
	$(PYTHON) -m venv $(OPENDP_POLARS_VENV)
	$(OPENDP_POLARS_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/opendp-polars-requirements.txt
	touch $@

bench: install $(OPENDP_POLARS_VENV)/.installed
	$(BIN)/python -m bench

bench-utility: install $(OPENDP_POLARS_VENV)/.installed
	$(BIN)/python -m bench.utility $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OPENDP_POLARS_VENV) .pytest_cache .ruff_cache .hypothesis
