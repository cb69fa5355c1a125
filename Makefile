# QF Sentinel: two commands on a fresh machine with Python 3.11+ and Node.js.
#   make demo   bring up the devnet and the embedded database, run a simulated round
#   make test   run the whole test suite (what CI runs)
# Each sets itself up from the locks (uv.lock, package-lock.json) and is quick once set up.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
UV     := $(BIN)/uv
# uv works on .venv, made from the machine's python3, and never downloads a Python.
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV)

.PHONY: setup lock lock-upgrade demo console test test-fast contracts check-contracts lint stop clean

setup: $(PY_STAMP) $(NODE_STAMP)

# Python dependencies come from uv.lock (hashes, every platform, Python 3.11+). pip installs
# the pinned uv from requirements/uv.txt with --require-hashes; then `uv sync --locked` makes
# .venv exactly the lock (the package editable with every extra, i.e. every deployable, the dev
# group included) and, like `npm ci`, refuses a lock that pyproject.toml has moved past
# (tests/test_lock.py checks it too). --compile-bytecode writes the .pyc files at install, so
# commands and tests start without compiling thousands of modules, even under PYTHONDONTWRITEBYTECODE.
$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/uv.txt
	@touch $@

# numba caches compiled kernels beside their source (__pycache__/*.nbi, *.nbc), keyed by the source
# file's path and time, not by the module's name: a file unchanged by a rename (qf.model.kernels became
# qf_sentinel.qf.model.kernels) would load a kernel that imports the old name. A new install starts
# them afresh (the first run compiles them again, ~25 s).
$(PY_STAMP): pyproject.toml uv.lock $(UV)
	$(UV_SYNC) sync --locked --all-extras --compile-bytecode --quiet
	find qf indexer scorer console -path '*/__pycache__/*.nb[ic]' -delete
	@touch $@

# Re-resolve after editing pyproject.toml (keeps every pin that still fits); lock-upgrade
# moves every package to the newest release the ranges allow. Both rewrite requirements/uv.txt.
lock: $(UV)
	$(UV_SYNC) lock
	$(BIN)/python scripts/lock_bootstrap.py

lock-upgrade: $(UV)
	$(UV_SYNC) lock --upgrade
	$(BIN)/python scripts/lock_bootstrap.py

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

# The unit tier only (pyproject.toml [tool.pytest.ini_options] describes the tiers).
test-fast: setup
	$(BIN)/pytest -m "not slow and not integration" -x

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
