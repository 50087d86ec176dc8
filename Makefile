# Emporium: the two commands are `make up` (run the platform) and `make test` (run the tests).
# Both bootstrap everything they need from PyPI into .venv: only Python 3.11+ and make are
# required. Dependencies are pinned in uv.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
PYTEST_ARGS ?=

.PHONY: up observe test venv lint typecheck imports proto proto-check asyncapi check bench clean deploy-check

$(BIN)/uv:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(BIN)/uv uv.lock pyproject.toml
	$(BIN)/uv sync --frozen --quiet
	@touch $@

venv: $(VENV)/.synced

## Run all twelve services on the embedded profile (Ctrl-C stops them all).
up: venv
	$(BIN)/emporium up

## Prometheus + Alertmanager for the running `make up` platform (Ctrl-C stops them).
observe: venv
	$(BIN)/python -m emporium.observability.local

## Run the whole test suite (lint, types, architecture rules, pytest).
test: venv check
	$(BIN)/pytest -rA $(PYTEST_ARGS)

check: lint typecheck imports proto-check

## The deployment checks CI runs (docs/deploy.md): helm lint/template/package, the chart
## against the code, kubeconform, conftest policies, a real control plane with kwok nodes.
## Their tools build once from the Go module proxy (.ci/deploy-tools.sh, cached).
deploy-check: venv
	$(BIN)/pytest -rA tests/deploy $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: venv
	$(BIN)/mypy

imports: venv
	$(BIN)/lint-imports

proto: venv
	$(BIN)/python scripts/gen_protos.py

proto-check: venv
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python scripts/gen_asyncapi.py --check

## Regenerate docs/asyncapi.json from the event models.
asyncapi: venv
	$(BIN)/python scripts/gen_asyncapi.py

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
