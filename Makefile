# QF Sentinel: two commands on a fresh machine with Python 3.11+ and Node.js.
#   make demo   bring up the devnet and the embedded database, run a simulated round
#   make test   run the whole test suite (what CI runs)
# Each sets itself up (virtualenv, pip, npm) and is quick once set up.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo console test test-fast contracts check-contracts lint stop clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# --ignore-scripts: the anvil wrapper's postinstall only locates the platform binary,
# which the project finds itself under node_modules/@foundry-rs/.
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(BIN)/qf demo

console: setup
	$(BIN)/qf console

test: setup
	scripts/ensure_prometheus.sh
	scripts/ensure_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow" -x

contracts: $(NODE_STAMP)
	$(BIN)/python scripts/compile_contracts.py

check-contracts: $(NODE_STAMP)
	$(BIN)/python scripts/compile_contracts.py --check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

stop: setup
	-$(BIN)/qf devnet --stop
	-$(BIN)/qf db stop

clean: stop
	rm -rf .qf
