# llmpulse developer entry points. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run up down test lint format typecheck pytest dashboards kubernetes clean prometheus3 test-prometheus3

setup: ## install Prometheus, Alertmanager, the collector and the Python env (idempotent)
	@bash scripts/bootstrap.sh

run: setup ## the main job: local stack + a day of traffic with ten incidents (~10 min), then the verdict
	@$(VENV)/bin/llmpulse demo

up: setup ## start the local stack in the background and say where everything listens
	@$(VENV)/bin/llmpulse up

down: ## stop the local stack
	@$(VENV)/bin/llmpulse down

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

prometheus3: ## build Prometheus 3 and Alertmanager 0.35 from the Go module proxy (optional; tens of minutes cold)
	@bash scripts/build_prometheus3.sh

test-prometheus3: prometheus3 ## the rule and stack tests on Prometheus 3 and Alertmanager 0.35
	@LLMPULSE_PROMETHEUS3=1 PATH="$(CURDIR)/.cache/prometheus3/bin:$$PATH" $(PY) -m pytest tests/stack

dashboards: ## regenerate dashboards/generated/*.json from the dashboard code
	@$(PY) -m dashboards.build

kubernetes: ## regenerate deploy/kubernetes/'s ConfigMaps from otel-collector-kafka.yaml and alerting/rules
	@$(PY) scripts/render_kubernetes.py

clean:
	rm -rf .cache/typecheck .cache/mypy build dist .pytest_cache .ruff_cache
