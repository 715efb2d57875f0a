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

.PHONY: setup browser wordnet run test test-slow test-all dev defs lint bench gpu-wheels clean

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

# the demo hero: tiny's model and recipe on a quick drill, so a first campaign shows a level-up (README)
run: setup
	$(BIN)/realm init
	$(BIN)/realm campaign --hero demo --segments 3

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

# The wheels a lent GPU machine lacks for bench/gpu_check.sh (it fetches nothing; its image already has torch,
# transformers, peft and accelerate): cp312 manylinux x86_64 binaries, as the device README's Notes say, and
# deepspeed built here from its sdist (PyPI has no wheel of it). The pins are this checkout's .venv versions.
# Run by hand before a GPU session, not in CI; .whl/ must stay under 56 MiB so the repo fits the 64 MiB a call
# carries. It needs .venv (make setup) but does not depend on it, so it never reinstalls the venv.
GPU_WHEELS ?= bitsandbytes==0.50.2 galore-torch==1.0 hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 \
	annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 dagster-pipes==1.13.27
DEEPSPEED_WHEEL ?= deepspeed==0.19.8
WHEEL_PLATFORMS := $(foreach n,28 27 24 17,--platform manylinux_2_$(n)_x86_64) \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64

gpu-wheels:
	@test -x $(BIN)/pip || { echo "gpu-wheels needs $(VENV) (with torch, to build deepspeed): make setup"; exit 1; }
	rm -rf .whl && mkdir .whl
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(WHEEL_PLATFORMS) -d .whl $(GPU_WHEELS)
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w .whl $(DEEPSPEED_WHEEL)
	@du -cb .whl/*.whl | tail -1 | awk '{ printf ".whl/: %.1f MiB\n", $$1 / 1048576; \
		if ($$1 > 56 * 1048576) { print "over 56 MiB: with the repo it passes the 64 MiB a call carries"; exit 1 } }'

clean:
	rm -rf $(VENV) .realm
