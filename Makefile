SHELL := /bin/bash
# blindspots: `make repro` runs the whole pipeline, `make test` the tests.
# Both create or refresh .venv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# dvc.yaml stages call `blindspots`, so the venv's bin must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv repro test test-fast bench bench-tiny lint clean

help: ## List every target with one line each
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The stamp depends on the pins and the package metadata, so the install
# step reruns only when one of them changes.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location"; test $${PIPESTATUS[0]:-0} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location"; test $${PIPESTATUS[0]:-0} -eq 0
	$(BIN)/python -c "import blindspots.cli, tensorflow, tf_keras, official.vision"
	@touch $(STAMP)

venv: $(STAMP) ## Create or refresh the virtual environment (.venv)

repro: $(STAMP) ## Run the whole DVC pipeline (dvc repro) on params.yaml
	$(BIN)/blindspots pipeline
	$(BIN)/dvc repro

test: $(STAMP) ## Run the full test suite, slow pipeline tests included
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP) ## Run the benchmarks and write benchmarks/results.md
	$(BIN)/python -m benchmarks.run

bench-tiny: $(STAMP) ## Smoke-test the benchmarks at tiny sizes (writes benchmarks/out/)
	$(BIN)/python -m benchmarks.run --tiny

lint: ## Byte-compile every source file
	$(BIN)/python -m compileall -q src tests

clean: ## Remove pipeline outputs (keeps .venv and the DVC cache)
	rm -rf data/raw data/prepared models metrics reports runs dvclive
