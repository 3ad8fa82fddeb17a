# The README's commands. Everything they need is set up here, from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVER_VENV := .venv-server
GEOPARQUET_VENV := .venv-geoparquet
AIRFLOW_VENV := .venv-airflow
DATA ?= tests/data/stac
PORT ?= 8081
PYTEST_ARGS ?=
MAP_ARGS ?=
# pytest workers: one per core, at most 4 (each starts its own servers and cluster); 0 runs them in this process.
TEST_WORKERS ?= auto
ITEMS ?= 10000
RUNS ?= 3
CHUNKS ?= 4
TERRAPI_WHEELS ?= ../shared/terrapi
PUBLISH_ITEMS ?= 2000
# The main job's dlt state lives in the project, so that each clone has its own.
export DLT_DATA_DIR := $(CURDIR)/.dlt/data

.PHONY: run test stack-up stack-down dashboard map bench bench-scale-out bench-publish clean

## run: serve the sample data with the light local server and run the main pipeline into DuckDB
run: $(VENV)/.installed-demo
	$(PY) -m stack exec --server rustac -- $(PY) pipelines/terrabyte_pipeline.py --url {url}

## test: install the test extras, PostgreSQL 15 + PostGIS, Chromium, the servers' and Airflow's virtualenvs, then pytest
test: $(VENV)/.installed-test $(VENV)/.terrapi-wheels $(SERVER_VENV)/.installed $(GEOPARQUET_VENV)/.installed $(AIRFLOW_VENV)/.installed
	$(PY) -m stack require-postgres
	$(PY) -m stack require-chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist worksteal $(PYTEST_ARGS)

## stack-up: start stac-fastapi-pgstac on 127.0.0.1:$(PORT) with the collections in $(DATA)
stack-up: $(VENV)/.installed-demo $(SERVER_VENV)/.installed
	$(PY) -m stack require-postgres
	$(PY) -m stack require-chromium
	$(PY) -m stack up --data $(DATA) --port $(PORT)

## stack-down: stop the stack on $(PORT) and remove its cluster
stack-down: $(VENV)/.installed-demo
	$(PY) -m stack down --port $(PORT)

## dashboard: dlt's dashboard (marimo) of the main job's runs, on 127.0.0.1:2718
dashboard: $(VENV)/.installed-demo
	DESTINATION__DUCKDB__CREDENTIALS__EXTENSIONS='["spatial"]' PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dlt pipeline terrabyte show

## map: a marimo notebook of what the main job loaded (footprints on a map, items over time), on 127.0.0.1:2719;
## MAP_ARGS="--pipeline terrabyte_postgres --footprints 50000" to change what it shows
map: $(VENV)/.installed-map
	$(PY) -m marimo run --headless --host 127.0.0.1 --port 2719 pipelines/map_notebook.py -- $(MAP_ARGS)

## bench: load $(ITEMS) items from a local stac-fastapi-pgstac with ours and its peers, $(RUNS) times (bench/README.md)
bench: $(VENV)/.installed-demo $(SERVER_VENV)/.installed
	$(PY) -m stack require-postgres >&2
	$(PY) -m bench --items $(ITEMS) --runs $(RUNS)

## bench-scale-out: a backfill of $(ITEMS) items in $(CHUNKS) parallel Airflow tasks against one process (bench/scale_out.py)
bench-scale-out: $(VENV)/.installed-demo $(SERVER_VENV)/.installed $(AIRFLOW_VENV)/.installed
	$(PY) -m stack require-postgres >&2
	$(PY) -m bench.scale_out --items $(ITEMS) --chunks $(CHUNKS)

## bench-publish: items/s published into the private API, ours against terrapi-client (bench/publish.py)
bench-publish: $(VENV)/.installed-test $(VENV)/.terrapi-wheels $(SERVER_VENV)/.installed
	$(PY) -m stack require-postgres >&2
	$(PY) -m bench.publish --items $(PUBLISH_ITEMS)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "Python 3.10 or newer is needed: make PYTHON=python3.x ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[$*]'
	touch $@

# terrabyte's own terrapi and terrapi-client, for the tests that use them (tests/test_terrapi.py), from the wheels in
# ../shared/terrapi (neither is on PyPI); terrapi-client names terrapi by a git URL, hence --no-deps.
$(VENV)/.terrapi-wheels: $(VENV)/.installed-test
	@if [ -d $(TERRAPI_WHEELS) ]; then \
		$(PY) -m pip install -q $(TERRAPI_WHEELS)/terrapi-1.0.8-py3-none-any.whl && \
		$(PY) -m pip install -q --no-deps $(TERRAPI_WHEELS)/terrapi_client-0.0.1-py3-none-any.whl; \
	else echo "No $(TERRAPI_WHEELS): the tests with terrabyte's terrapi and terrapi-client will be skipped."; fi
	touch $@

$(AIRFLOW_VENV)/.installed: stack/airflow-requirements.txt pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q -r stack/airflow-requirements.txt -e .
	touch $@

$(SERVER_VENV)/.installed: stack/server-requirements.txt
	$(PYTHON) -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/python -m pip install -q --upgrade pip
	$(SERVER_VENV)/bin/python -m pip install -q -r stack/server-requirements.txt
	touch $@

$(GEOPARQUET_VENV)/.installed: stack/geoparquet-requirements.txt
	$(PYTHON) -m venv $(GEOPARQUET_VENV)
	$(GEOPARQUET_VENV)/bin/python -m pip install -q --upgrade pip
	$(GEOPARQUET_VENV)/bin/python -m pip install -q -r stack/geoparquet-requirements.txt
	touch $@

clean:
	rm -rf $(VENV) $(SERVER_VENV) $(GEOPARQUET_VENV) .pytest_cache
