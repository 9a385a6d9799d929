# The README's two commands: `make dev` (run the product) and `make test` (run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR_DIR := services/api/web/vendor
VENDOR_MODULES := $(VENDOR_DIR)/node_modules/.package-lock.json
# PYTHONWARNINGS: setuptools' editable-install banner is not news to a user.
PIP := PYTHONWARNINGS=ignore $(BIN)/pip --disable-pip-version-check
# Installs happen again only when a pyproject changes, so `make dev` starts at once after the
# first time. The Python client (clients/python) goes into the same venv: `dronecast simulate`
# and the README's snippets use it.
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev

.PHONY: dev test lint setup setup-dev test-deps bench vendor

$(BIN)/python:
	@echo "==> creating $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip

$(INSTALLED): $(BIN)/python pyproject.toml clients/python/pyproject.toml
	@echo "==> installing DroneCast and its Python client into $(VENV) (about a minute the first time)"
	@$(PIP) install --progress-bar off -e . -e clients/python | grep -E '^(Collecting|Successfully)' || true
	@$(BIN)/python -c "import services.cli, dronecast_client" && touch $@

$(INSTALLED_DEV): $(INSTALLED)
	@echo "==> installing the development tools into $(VENV)"
	@$(PIP) install --progress-bar off -e '.[dev]' | grep -E '^(Collecting|Successfully)' || true
	@$(BIN)/python -c "import pytest, mypy, dronecast_client" && touch $@

setup: $(INSTALLED)

setup-dev: $(INSTALLED_DEV)

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

# Two pytest processes, each taking whole files (a file's servers and fixtures stay together),
# in the order tests/conftest.py gives them (the longest first).
test: setup-dev test-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: setup-dev  # ruff, formatting, mypy, and the import rules in .importlinter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
