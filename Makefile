# Agora: `make up` runs the whole stack locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GENERATED := gen/agora/__init__.py
PROTOS := $(shell find protos -name '*.proto')

.PHONY: help install gen up test lint format typecheck pytest clean bench

help:
	@echo "make up         install, migrate, run every service and the gateway on :5000"
	@echo "make test       lint, type-check and run the whole test suite"
	@echo "make gen        regenerate gen/ from protos/"
	@echo "make format     apply ruff's formatting and safe fixes"
	@echo "make bench      load the benchmark data set, measure every scenario and ceiling,"
	@echo "                write bench/results/*.json and docs/performance.md (SCALE=0.1: quick)"

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
	  f"Agora needs Python 3.11, found {sys.version.split()[0]}: make PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(INSTALLED)

$(GENERATED): $(INSTALLED) $(PROTOS) tools/gen_protos.py
	$(PY) tools/gen_protos.py

gen: $(GENERATED)

up: $(GENERATED)
	$(PY) -m tools.stack up

lint: $(GENERATED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(GENERATED)
	$(VENV)/bin/mypy common tools services gateway bench

pytest: $(GENERATED)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The benchmarks (issue 7): about 10 minutes at SCALE=1.0, 3 at 0.1. Needs wrk
# (apt-get install wrk) and pgbench; uses its own database, agora_bench.
SCALE ?= 1.0
BENCH_SECONDS ?= 20
bench: $(GENERATED)
	$(PY) -m bench --scale $(SCALE) --seconds $(BENCH_SECONDS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) gen .run .pytest_cache .mypy_cache .ruff_cache
