# GenBench Kit: set-up and the two quick-start commands.
#   make repro   create .venv if missing, install the kit, check params.yaml (genbench profile check), run `dvc repro`
#   make test    same set-up, then the default (offline, CPU) test suite
#   make rehearse  dress rehearsal of the paper profile, all 22 datasets, on stand-ins (docs/rehearsal.md)
#   make lock    rewrite requirements.lock from what .venv resolved (after changing dependencies)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned set `make install` installs first (CI and the Dockerfile both); LOCK= resolves afresh.
LOCK ?= requirements.lock
export PATH := $(CURDIR)/$(BIN):$(PATH)
export MPLBACKEND ?= Agg

.PHONY: install lock repro rehearse test test-slow test-gpu bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(if $(LOCK),$(BIN)/python -m pip install --quiet -r $(LOCK))
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/freeze.txt
	$(BIN)/python -m pip install --quiet --dry-run --ignore-installed --report $(VENV)/resolved.json \
		-c $(VENV)/freeze.txt -e '.[test]'
	$(BIN)/python tools/write_lock.py $(VENV)/resolved.json > requirements.lock

repro: $(STAMP)
	$(BIN)/genbench profile check params.yaml
	$(BIN)/dvc repro

# REHEARSE_ARGS: e.g. --datasets voc-2007,hateful-memes or --full-size-generator
rehearse: $(STAMP)
	$(BIN)/genbench rehearse paper $(REHEARSE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu

clean-venv:
	rm -rf $(VENV)
