# Agora: `make up` runs the whole stack locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GENERATED := gen/agora/__init__.py
PROTOS := $(shell find protos -name '*.proto')

.PHONY: help install gen up test lint format typecheck pytest clean

help:
	@echo "make up         install, migrate, run every service and the gateway on :5000"
	@echo "make test       lint, type-check and run the whole test suite"
	@echo "make gen        regenerate gen/ from protos/"
	@echo "make format     apply ruff's formatting and safe fixes"

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
	$(VENV)/bin/mypy common tools services gateway

pytest: $(GENERATED)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) gen .run .pytest_cache .mypy_cache .ruff_cache
