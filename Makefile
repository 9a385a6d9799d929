# The README's two commands: `make dev` (run the product) and `make test` (run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PYTHONWARNINGS: setuptools' editable-install banner is not news to a user.
PIP := PYTHONWARNINGS=ignore $(BIN)/pip --disable-pip-version-check
# Installs happen again only when a pyproject changes, so `make dev` starts at once after the
# first time. The Python client (clients/python) goes into the same venv: `dronecast simulate`
# and the README's snippets use it.
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev

.PHONY: dev test lint setup setup-dev test-deps bench

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

# What the tests need besides Python: redis-server (they start their own) and Node for the
# official socket.io-client. Installed from Debian's packages when missing.
test-deps:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	@command -v node >/dev/null && command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	cd tests/e2e/js && npm ci --no-audit --no-fund --silent
	cd bench/loadgen && npm ci --no-audit --no-fund --silent

dev: setup
	$(BIN)/dronecast dev

test: setup-dev test-deps
	$(BIN)/python -m pytest -q

lint: setup-dev  # ruff, formatting, mypy, and the import rules in .importlinter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
