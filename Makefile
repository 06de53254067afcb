# nightshift: every target bootstraps from a fresh clone (uv, .venv, locked dependencies).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export NIGHTSHIFT_LOG_LEVEL ?= WARNING

.PHONY: help bootstrap demo test test-fast lint format airflow clean images docker-e2e \
	stack-up stack-smoke stack-password stack-down

help:
	@echo "make demo     synthesise data, run every DAG for two nights, print what was published"
	@echo "make test     the test suite (unit, SQL, data, DAG, end to end)"
	@echo "make lint     ruff check + format check"
	@echo "make airflow  Airflow standalone UI on http://127.0.0.1:8080 with this repo's DAGs"
	@echo "make images   build the trainer and Airflow images here, no registry needed (docker/)"
	@echo "make docker-e2e  music_skip with the docker train backend, against the local backend"
	@echo "make stack-up / stack-smoke / stack-down  the compose stack; the smoke runs music_skip"

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python 3.11
	@touch $@

bootstrap: $(VENV)/.synced

demo: bootstrap
	$(VENV)/bin/nightshift demo --fresh

# Two workers (the CI machine's two cores): the slow tests wait on child processes, Airflow
# and the warehouse lock as much as they compute. Groups: tests/conftest.py.
test: bootstrap
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: bootstrap
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

airflow: bootstrap
	eval "$$(PYTHONPATH=plugins $(PY) -m nightshift_airflow.airflow_env --print-env)" && \
	  $(PY) -m nightshift_airflow.airflow_env --init && \
	  PATH=$(CURDIR)/$(VENV)/bin:$$PATH AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=8080 \
	  $(VENV)/bin/airflow standalone

clean:
	rm -rf lake warehouse .airflow

# --- containers (docker/README.md): not part of `make test`, they need a Docker engine ---------
# Creating a container copies its image's layers on a vfs engine: longer than compose's 60 s
# default on a loaded 2-core machine (measured: `make stack-up` gave up at 60 s).
export COMPOSE_HTTP_TIMEOUT ?= 600
COMPOSE ?= $(shell docker compose version > /dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# docker-compose.yml + the local overlay, merged by compose, minus the published ports (host network)
STACK := $(COMPOSE) -p nightshift -f docker/.compose.local.yml

images: bootstrap
	docker/build-local.sh

docker-e2e: images
	$(PY) -m pytest -q -p no:cacheprovider -m docker tests/docker

stack-up: images
	$(PY) docker/compose_local.py "$(COMPOSE)"
	$(STACK) up -d --no-build
	@echo "Airflow: http://127.0.0.1:8080 (admin; password: make stack-password)"

stack-smoke: stack-up
	COMPOSE="$(STACK)" $(PY) docker/stack_smoke.py

stack-password:
	@$(STACK) exec -T airflow-apiserver cat /opt/airflow/simple_auth_manager_passwords.json.generated

stack-down:
	$(PY) docker/compose_local.py "$(COMPOSE)"
	$(STACK) down --volumes --remove-orphans
