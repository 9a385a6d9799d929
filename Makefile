# The README's two commands: `make dev` (run the product) and `make test` (run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR_DIR := services/api/web/vendor
VENDOR_MODULES := $(VENDOR_DIR)/node_modules/.package-lock.json

.PHONY: dev test lint setup setup-dev test-deps bench vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q -e .

setup-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

# What the tests need besides Python: redis-server (they start their own), Node for the
# official socket.io-client, and chromium for the dashboard's browser tests (driven by the
# playwright package of the dev extras, at /usr/bin/chromium). Installed from Debian's packages
# when missing.
test-deps: $(VENDOR_MODULES)
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	@command -v node >/dev/null && command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	cd tests/e2e/js && npm ci --no-audit --no-fund --silent
	cd bench/loadgen && npm ci --no-audit --no-fund --silent

# The browser assets the api serves (socket.io-client, Swagger UI, ReDoc, GraphiQL, React), from
# the npm packages pinned in services/api/web/vendor/package-lock.json. The output is committed,
# so `make dev` needs no npm; run this after changing a version there.
# The pinned packages themselves (the tests check that vendor.mjs reproduces the committed copy).
$(VENDOR_MODULES): $(VENDOR_DIR)/package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	cd $(VENDOR_DIR) && npm ci --ignore-scripts --no-audit --no-fund --silent

vendor: $(VENDOR_MODULES)
	cd $(VENDOR_DIR) && node vendor.mjs

dev: setup
	$(BIN)/dronecast dev

test: setup-dev test-deps
	$(BIN)/python -m pytest -q

lint: setup-dev  # ruff, formatting, mypy, and the import rules in .importlinter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
