# Everything a new machine needs is installed by these targets: a Python 3.11+
# virtual environment from requirements.lock and the front-end assets from
# package-lock.json. `make run` and `make test` are the README's quick start.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := .make

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint lock clean bench soak

run: install
	$(BIN)/redline migrate
	$(BIN)/redline seed --demo
	REDLINE_DEMO=1 $(BIN)/redline serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/pytest

install: $(STAMP)/python $(STAMP)/assets

$(STAMP)/python: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Redline needs Python 3.11 or newer: set PYTHON=python3.11 (or newer)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/assets: package.json package-lock.json
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMP) && touch $@

lint: install
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench

# Re-pin Python dependencies after changing pyproject.toml.
lock: $(STAMP)/python
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra test --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) node_modules $(STAMP) .pytest_cache .hypothesis

# Not part of `make test`: builds issue 9's consultation (30,000 amendments, 50,000 voters,
# 1,000,000 votes) on each engine, loads a real server with 64 connections and prints
# requests/s, p50 and p99 beside bare Starlette plaintext, report times and export memory
# (docs/performance.md). `make bench BENCH_ARGS=--quick` runs a tenth of it.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Not part of `make test`: votes from many threads at a real server on each engine, the
# server killed with SIGKILL mid-load and restarted; prints acknowledged against stored
# votes and "lost: 0" per engine, and fails if any acknowledged vote was lost.
soak: install
	$(BIN)/python -m bench.soak
