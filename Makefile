# Two commands on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint unit protos bench soak install lock clean docs

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/leaderboard up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python scripts/gen_docs.py --check

unit: $(STAMP)
	$(BIN)/pytest

test: lint unit

protos: $(STAMP)
	$(BIN)/buf format -w
	$(BIN)/python scripts/gen_protos.py

docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

bench: $(STAMP)
	$(BIN)/leaderboard bench all --embedded --repeat 3 --json bench-results.json

soak: $(STAMP)
	$(BIN)/pytest -m soak --timeout 3600

lock: $(STAMP)
	{ echo "# Exact versions of every Python dependency (make install uses this file)."; \
	  echo "# Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --all --exclude-editable | grep -viE '^(leaderboard|pip)=='; } > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
