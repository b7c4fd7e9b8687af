# Customer-intelligence pipeline. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

CUSTOMERS ?= 2000

.PHONY: help install demo data run test test-fast dev lint format bench backfill clean

help:
	@echo "make demo      set up, generate demo data (if none), run customer_daily once"
	@echo "make test      the whole test suite (what CI runs)"
	@echo "make dev       Dagster UI on http://127.0.0.1:3000"
	@echo "make backfill  FROM=YYYY-MM-DD TO=YYYY-MM-DD: classification history, month ends"
	@echo "make bench     benchmarks (S/M/L), table saved under benchmarks/"
	@echo "make lint      ruff check + format check"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

data: install
	$(PY) -m crm.demo --customers $(CUSTOMERS)

run: install
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m pipelines.run

demo: data run

test: install
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m pytest -q

dev: install
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

backfill: install
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m pipelines.backfill --from $(FROM) --to $(TO)

bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
