# Two commands a newcomer needs: `make run` (whole weekly pipeline on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEPLOY_TOOLS := $(VENV)/.deploy-tools
POSTGRES := $(VENV)/.postgres
export MLFLOW_DISABLE_TELEMETRY ?= true
export PIP_DISABLE_PIP_VERSION_CHECK ?= 1

.PHONY: setup run test lint bench clean

setup: $(STAMP) $(DEPLOY_TOOLS) $(POSTGRES)

# torch first: a plain resolver pull of torch would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[airflow,dev,bench,postgres,teachers]'
	touch $(STAMP)

# Compose + Helm engine for tests/test_deploy.py (Debian docker-compose; helm-sdkpy and kubernetes-validate
# from PyPI in .venv/deploy-tools). Fast when already installed.
$(DEPLOY_TOOLS): scripts/install-deploy-tools.sh | $(STAMP)
	bash scripts/install-deploy-tools.sh
	touch $@

# PostgreSQL (Debian's package) for tests/real_services/: initdb + pg_ctl into a temp folder. Fast when present.
$(POSTGRES): scripts/install-postgres.sh | $(STAMP)
	bash scripts/install-postgres.sh
	touch $@

run: $(STAMP)
	$(BIN)/conf-profile run $(ARGS)

test: $(STAMP) $(DEPLOY_TOOLS) $(POSTGRES)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf data airflow_home .pytest_cache
