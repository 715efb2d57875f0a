# The README's commands. `make run` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# Plain `torch` suits users (CUDA wheels); CI pins the CPU build: make TORCH=torch==2.13.0 test
TORCH ?= torch
REALM_HOME ?= $(CURDIR)/.realm
# the Dagster instance: one exported in the shell is used, as realm itself does
DAGSTER_HOME ?= $(REALM_HOME)/dagster
export REALM_HOME DAGSTER_HOME
BIN := $(VENV)/bin

.PHONY: setup browser wordnet run test test-slow test-all dev defs lint bench clean

setup: $(VENV)/.installed wordnet

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[dev]"
	touch $@

# Debian's headless Chromium renders the mirror page in tests; installed when we may (root), else skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the mirror page test will be skipped"; }

# Debian's WordNet 3.0 database (/usr/share/wordnet) is SY's lexical source (skills/lexicon.py): the
# distribution ships it, pip cannot, and the files are read offline; installed when we may (root).
wordnet:
	@[ -f /usr/share/wordnet/data.noun ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null) \
		|| echo "wordnet-base not installed: run 'apt-get install -y wordnet-base' as root (SY needs it)"; }

run: setup
	$(BIN)/realm init
	$(BIN)/realm campaign --hero tiny

test: setup browser
	$(BIN)/python -m pytest

# the tests marked slow (the proofs among them: two ranks, the daemon alone, disk full, kill -9); CI runs them
test-slow: setup browser
	$(BIN)/python -m pytest -m slow

test-all: setup browser
	$(BIN)/python -m pytest -m ""

# dg compares the project's .venv with the active one ($$VIRTUAL_ENV) and warns when they differ: the
# targets below run dg as if .venv were activated, which it is in effect
DG := VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg

# `dg dev` finds the project through [tool.dg] in pyproject.toml (the defs/ folder)
dev: setup
	$(BIN)/realm init
	$(DG) dev

# what `dg` sees: every asset, check, job, sensor and resource; and that they all load
defs: setup
	$(DG) list defs
	$(DG) check defs

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .realm
