# `make train` and `make test` set up .venv on first use (again only when a requirements file changes).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RESULTS_DIR ?= results
export PYTHONPATH := $(CURDIR)

.PHONY: help setup extras train test test-fast lint format bench bench-smoke clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

EXTRAS := $(VENV)/.extras-installed

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

$(EXTRAS): $(STAMP) requirements-extras.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-extras.txt
	touch $@

setup: $(STAMP)  ## create .venv with the pinned packages (once)

extras: $(EXTRAS)  ## install the optional packages: trackers mlflow, neptune, wandb; itermplot (exact pins)

train: $(STAMP)  ## train configs/cnn.gin on the embedded digits data into RESULTS_DIR/cnn
	$(PY) bin/train.py $(RESULTS_DIR)/cnn configs/cnn.gin

test: $(STAMP) $(EXTRAS)  ## run the whole test suite (installs the trackers too, to test them)
	$(PY) -m pytest -q --durations=15 tests

test-fast: $(STAMP)  ## tests/unit/ only (< 1 min): for the edit-test loop; `make test` runs every folder
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)  ## speed guards vs hand-written PyTorch, sweeps (< 10 min); tables in bench/last_run.md
	bash bench/run_all.sh

bench-smoke: $(STAMP)  ## every benchmark once at tiny sizes (< 3 min): do they still run? (CI runs it)
	bash bench/smoke.sh

lint: $(STAMP)  ## ruff lint and format check, mypy type check of src/ (CI runs this)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting (formats even when a lint error is left to fix by hand)
	status=0; $(VENV)/bin/ruff check --fix . || status=$$?; $(VENV)/bin/ruff format . && exit $$status

clean-venv:  ## delete .venv
	rm -rf $(VENV)
