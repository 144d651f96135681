# Poverty Insight Collaborative. Quick start: `make demo`, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export COLLAB_HOME ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(COLLAB_HOME)/dagster
# The browser tests drive Debian's chromium through Playwright; Playwright never downloads a browser.
CHROMIUM := /usr/bin/chromium
# axe-core, injected into pages by the browser tests to check accessibility (npm, pinned in package.json).
AXE := node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The production profile's Dagster instance runs on Debian's PostgreSQL; its tests start a private cluster.
INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/initdb)
POSTGRES_DIR ?= $(COLLAB_HOME)/postgres

# A pytest-xdist worker per core and one more, a test module per worker at a time (a module's fixtures, such as the
# demo workspace or a server, are built once). The system tests spend much of their time waiting on a `collab`
# command, a server or the browser; with a worker per core the cores sat idle a sixth of the suite (572 s on 2
# cores, against 521 s with three workers, measured one after the other).
PYTEST_PARALLEL ?= --numprocesses $(shell echo $$(( $$(nproc) + 1 ))) --dist loadfile

OPENDP_POLARS_VENV := bench/.venv-opendp-polars

.PHONY: help install browser postgres-installed postgres postgres-stop demo test dev portal bucket bucket-stop lint format bench bench-utility bench-coverage bench-audit bench-linkage bench-relink bench-scale bench-intake bench-small-files clean

help:
	@echo "make demo   generate demo extracts and run the whole pipeline (workspace: $(COLLAB_HOME))"
	@echo "make test   install everything a test needs and run the whole test suite"
	@echo "make dev    open the Dagster UI on the same workspace (http://127.0.0.1:3000)"
	@echo "make portal serve the charity portal on http://127.0.0.1:8400 (charities check, send and follow files)"
	@echo "make bucket start the S3 server (SeaweedFS) for this workspace; make bucket-stop stops it"
	@echo "make lint   ruff"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make bench-utility  error, coverage and speed of the privacy engine against two baselines"
	@echo "make bench-coverage  coverage of every published interval kind, the site's totals included"
	@echo "make bench-audit  an empirical lower bound on epsilon beside the stated epsilon"
	@echo "make bench-intake   a 1,000,000-row CSV through check_extract against DuckDB read_csv, and the GX share"
	@echo "make bench-scale    the whole pipeline at scale (BENCH_ARGS='--contacts 1000000'), against DuckDB"
	@echo "make postgres       install Debian's PostgreSQL and start a private cluster for the production profile"
	@echo "make bench-small-files  50 files of 100 rows through collab run: files/min (BENCH_ARGS='--postgres')"
	@echo "make bench-linkage  record linkage precision and recall against the demo truth, beside the exact token"
	@echo "make bench-relink   one linking charity's load into a warehouse of millions of units: time and peak RSS"

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[collaborative,dev]"
	touch $@

install: $(VENV)/.installed

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests"
	export DEBIAN_FRONTEND=noninteractive; \
	$(SUDO) apt-get install -y --no-install-recommends chromium < /dev/null \
	|| ($(SUDO) apt-get update < /dev/null && $(SUDO) apt-get install -y --no-install-recommends chromium < /dev/null)

$(AXE): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error < /dev/null
	touch $@

browser: $(CHROMIUM) $(AXE)

$(INITDB):
	@echo "Installing Debian's postgresql for the production profile and its tests"
	export DEBIAN_FRONTEND=noninteractive; \
	$(SUDO) apt-get install -y --no-install-recommends postgresql < /dev/null \
	|| ($(SUDO) apt-get update < /dev/null && $(SUDO) apt-get install -y --no-install-recommends postgresql < /dev/null)
	test -x $$(ls /usr/lib/postgresql/*/bin/initdb | head -n1)

postgres-installed: $(INITDB)

# A private cluster on 127.0.0.1 (a free port) in $(POSTGRES_DIR); it prints the URL to export.
postgres: install postgres-installed
	$(BIN)/python -m collab.postgres start $(POSTGRES_DIR)

postgres-stop: install
	$(BIN)/python -m collab.postgres stop $(POSTGRES_DIR)

demo: install
	$(BIN)/collab demo

test: install browser postgres-installed
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_PARALLEL)

dev: install
	$(BIN)/collab init
	$(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

portal: install
	$(BIN)/collab portal serve

bucket: install
	$(BIN)/collab bucket serve

bucket-stop: install
	$(BIN)/collab bucket stop

lint: install
	$(BIN)/lint-imports
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

bench-coverage: install
	$(BIN)/python -m bench.coverage $(BENCH_ARGS)

bench-audit: install
	$(BIN)/python -m bench.privacy_audit $(BENCH_ARGS)

bench-scale: install
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

bench-intake: install
	$(BIN)/python -m bench.intake $(BENCH_ARGS)

bench-small-files: install
	$(BIN)/python -m bench.small_files $(BENCH_ARGS)

bench-linkage: install
	$(BIN)/python -m bench.linkage $(BENCH_ARGS)

bench-relink: install
	$(BIN)/python -m bench.relink $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OPENDP_POLARS_VENV) .pytest_cache .ruff_cache .hypothesis
