# llmpulse developer entry points. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint format typecheck pytest clean

setup: ## install Prometheus, Alertmanager, the collector and the Python env (idempotent)
	@bash scripts/bootstrap.sh

run: setup ## start the local stack in the foreground (Ctrl-C stops it)
	@$(VENV)/bin/llmpulse up

test: setup lint typecheck pytest ## everything CI runs

lint:
	@echo "==> ruff format --check and ruff check"
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/ruff check .

format:
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

typecheck:
	@echo "==> mypy on the llmpulse package"
	@bash scripts/typecheck.sh

pytest:
	@echo "==> pytest"
	@$(PY) -m pytest

clean:
	rm -rf .cache/typecheck .cache/mypy build dist .pytest_cache .ruff_cache
