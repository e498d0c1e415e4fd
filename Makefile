# llmpulse developer entry points. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The tests marked `prometheus3` again, on Prometheus 3.16 and Alertmanager 0.35 (built by
# `make setup` into .cache/prometheus3/bin, first on PATH; the conftest checks it is them).
PYTEST_PROMETHEUS3 := LLMPULSE_PROMETHEUS3=1 PATH="$(CURDIR)/.cache/prometheus3/bin:$$PATH" $(PY) -m pytest -m prometheus3

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

pytest: ## the whole suite on Debian's Prometheus 2.42 and Alertmanager 0.25, then the prometheus3 tests on 3.16 and 0.35
	@echo "==> pytest"
	@status=0; $(PY) -m pytest || status=$$?; \
	echo "==> pytest -m prometheus3 (on Prometheus 3 and Alertmanager 0.35)"; \
	$(PYTEST_PROMETHEUS3) || status=$$?; exit $$status

prometheus3: ## build Prometheus 3 and Alertmanager 0.35 from the Go module proxy (part of setup)
	@bash scripts/build_prometheus3.sh

test-prometheus3: prometheus3 ## only the tests marked prometheus3, on Prometheus 3 and Alertmanager 0.35
	@$(PYTEST_PROMETHEUS3)

dashboards: ## regenerate dashboards/generated/*.json from the dashboard code
	@$(PY) -m dashboards.build

kubernetes: ## regenerate deploy/kubernetes/'s ConfigMaps from otel-collector-kafka.yaml and alerting/rules
	@$(PY) scripts/render_kubernetes.py

clean:
	rm -rf .cache/typecheck .cache/mypy build dist .pytest_cache .ruff_cache
