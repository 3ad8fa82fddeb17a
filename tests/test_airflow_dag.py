"""The Airflow DAGs (pipelines/dags/terrabyte_stac.py) run for real in Airflow's own virtualenv, against a local
STAC API. The scheduled DAG with `dag.test()`: a task and a pipeline per collection, and each DAG run loads exactly
the items acquired in its data interval, into DuckDB and into Postgres (its credentials in Airflow's
`dlt_secrets_toml` Variable, which dlt reads itself: none in the DAG file or the task's environment). The backfill
DAG by Airflow's scheduler and LocalExecutor (its database in Postgres, as LocalExecutor needs): time chunks that
read at once, in parallel tasks, and load every item once."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from stack import CatalogFolder, PgstacServer, RustacServer
from stack.airflow import AIRFLOW_VENV, PROJECT_ROOT, LocalAirflow
from stack.fault_proxy import FaultProxy, Faults
from tests.stac_helpers import loaded_ids, query

AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
RUNNER = PROJECT_ROOT / "tests" / "airflow_dag_run.py"
COLLECTIONS = ["naip", "joplin"]
DAYS = ["2019-11-09", "2000-02-02"]
"""Two DAG runs' days (each its data interval, `@daily`): one with naip items, and the day of every joplin item."""
GEOMETRY_TYPE = (
    "SELECT {type_column} FROM information_schema.columns"
    " WHERE table_schema = 'terrabyte_stac' AND table_name = 'items' AND column_name = 'geometry'"
)


def local_airflow(
    workdir: Path, api_url: str, settings: dict[str, str], metadata_database: str | None = None
) -> LocalAirflow:
    """Airflow in `workdir`, its DAGs reading `COLLECTIONS` of the API at `api_url`."""
    assert AIRFLOW_PYTHON.exists(), "Airflow's virtualenv: `make test` builds it (.venv-airflow)"
    api = {"SOURCES__STAC__URL": api_url, "SOURCES__STAC__COLLECTIONS": json.dumps(COLLECTIONS)}
    return LocalAirflow(workdir, api | settings, metadata_database)


def dag_test(
    airflow: LocalAirflow, dag_id: str, logical_date: datetime, params: dict[str, Any] | None = None
) -> list[str]:
    """A DAG run by `dag.test()`: its data interval, then each task and its state."""
    command = [str(AIRFLOW_PYTHON), str(RUNNER), dag_id, logical_date.isoformat(), json.dumps(params or {})]
    run = subprocess.run(command, env=airflow.env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return [line.removeprefix("dag_run: ") for line in run.stdout.splitlines() if line.startswith("dag_run: ")]


def acquired_within(catalog: CatalogFolder, start: datetime, end: datetime) -> dict[str, set[str]]:
    """The sample's items of `COLLECTIONS` acquired in `[start, end)`."""
    found: dict[str, set[str]] = {}
    for collection in COLLECTIONS:
        for item in catalog.files_of(collection).items():
            properties = item["properties"]
            acquired = datetime.fromisoformat(
                (properties["datetime"] or properties["start_datetime"]).replace("Z", "+00:00")
            )
            if start <= acquired.astimezone(timezone.utc) < end:
                found.setdefault(collection, set()).add(item["id"])
    return found


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_each_dag_run_loads_the_items_of_its_data_interval_a_task_per_collection(
    destination: str,
    rustac_server: RustacServer,
    sample_catalog: CatalogFolder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    secrets_variable = ""
    if destination == "postgres":  # its credentials from an Airflow Variable, which dlt reads on its own
        credentials = request.getfixturevalue("postgres_database")
        settings = {"AIRFLOW_DAG__DESTINATION": "postgres"}
        secrets_variable = f'[destination.postgres]\ncredentials = "{credentials}"\n'
        reader = dlt.pipeline("airflow_check", destination=dlt.destinations.postgres(credentials),
                              dataset_name="terrabyte_stac", pipelines_dir=str(tmp_path / "check"))  # fmt: skip
    else:
        database = str(tmp_path / "stac.duckdb")
        settings = {"AIRFLOW_DAG__DESTINATION": "duckdb", "DESTINATION__DUCKDB__CREDENTIALS": database}
        reader = dlt.pipeline("airflow_check", destination=dlt.destinations.duckdb(database),
                              dataset_name="terrabyte_stac", pipelines_dir=str(tmp_path / "check"))  # fmt: skip
    airflow = local_airflow(tmp_path, rustac_server.url, settings)
    airflow.run("db", "migrate")
    if secrets_variable:
        airflow.run("variables", "set", "dlt_secrets_toml", secrets_variable)

    expected: dict[str, set[str]] = {}
    for day in DAYS:
        logical_date = datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(days=1)  # its interval ends then
        interval, *tasks = dag_test(airflow, "terrabyte_stac", logical_date)
        assert tasks == [f"terrabyte.terrabyte_{name} success" for name in sorted(COLLECTIONS)]
        start, end = (datetime.fromisoformat(value) for value in interval.split()[1:])
        assert end - start == timedelta(days=1) and start <= datetime.fromisoformat(f"{day}T12:00:00+00:00") < end
        for collection, ids in acquired_within(sample_catalog, start, end).items():
            expected.setdefault(collection, set()).update(ids)
        assert loaded_ids(reader) == expected, f"after the DAG run of {day}"
    assert set(expected) == set(COLLECTIONS) and len(expected["joplin"]) == 30
    type_column = "udt_name" if destination == "postgres" else "data_type"
    geometry_type = query(reader, GEOMETRY_TYPE.format(type_column=type_column))
    assert geometry_type == [("geometry",) if destination == "postgres" else ("JSON",)], "as the main job loads it"


BACKFILL = ("2000-01-01T00:00:00Z", "2025-01-01T00:00:00Z", 4)
"""The backfill's range, which holds every item of the sample, and its chunks."""
RUN_ENDS_WITHIN_S = 600.0


def later_chunks(start: str, end: str, count: int) -> list[tuple[str, str]]:
    """The chunks after the first, as the DAG cuts them (equal, to the second) and as the searches write them."""
    first, last = (datetime.fromisoformat(value) for value in (start, end))
    step = timedelta(seconds=(last - first).total_seconds() // count)
    cuts = [first + step * index for index in range(count)] + [last]
    written = [cut.isoformat().replace("+00:00", "Z") for cut in cuts]
    return list(zip(written[1:-1], written[2:], strict=True))


def test_a_backfill_loads_its_time_chunks_in_parallel_tasks_every_item_once(
    rustac_server: RustacServer,
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    postgres_database: str,
    tmp_path: Path,
) -> None:
    """Airflow's scheduler with LocalExecutor runs the first chunk alone, then the other three at once: the proxy
    holds their first requests until a request of each has come (they read together), and the table ends with
    every item of the sample once."""
    pgstac_server.cluster.create_database("airflow_backfill")
    start, end, count = BACKFILL
    faults = Faults(gathered=tuple(later_chunks(start, end, count)))
    served = {collection: ids for collection, ids in sample_catalog.item_ids_by_collection().items() if ids}
    with FaultProxy(rustac_server.url, faults) as proxy:
        settings = {
            "SOURCES__STAC__COLLECTIONS": json.dumps(sorted(served)),
            "AIRFLOW_DAG__DESTINATION": "postgres",
            "DESTINATION__POSTGRES__CREDENTIALS": postgres_database,
        }
        airflow = local_airflow(tmp_path, proxy.url, settings, pgstac_server.cluster.url("airflow_backfill"))
        airflow.prepared().triggered("terrabyte_stac_backfill", {"start": start, "end": end, "chunks": count})
        run = airflow.scheduled_to_the_end("terrabyte_stac_backfill", RUN_ENDS_WITHIN_S)

    assert run.state == "success", f"{run}\n{airflow.log.read_text()[-3000:]}"
    group = "terrabyte_backfill"
    assert run.task_states == [(f"{group}.chunk", index, "success") for index in range(count - 1)] + [
        (f"{group}.first_chunk", -1, "success"),
        (f"{group}.indexes", -1, "success"),
        (f"{group}.later_chunks", -1, "success"),
    ]
    assert faults.gathered_at_once, "the later chunks' tasks did not read at once"
    reader = dlt.pipeline("airflow_check", destination=dlt.destinations.postgres(postgres_database),
                          dataset_name="terrabyte_stac", pipelines_dir=str(tmp_path / "check"))  # fmt: skip
    assert loaded_ids(reader) == served
    items = sum(len(ids) for ids in served.values())
    assert query(reader, "SELECT count(*), count(DISTINCT (collection, id)) FROM {items}") == [(items, items)]
    schemas = query(reader, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'terrabyte_stac%' ORDER BY 1")
    assert schemas == [("terrabyte_stac",)], "the chunks' staging datasets are gone"
    assert query(reader, "SELECT indexname FROM pg_indexes WHERE indexname = 'items__geometry_gist'") == [
        ("items__geometry_gist",)
    ]


def test_a_backfill_into_duckdb_loads_its_chunks_one_after_another(
    rustac_server: RustacServer, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    """Into DuckDB (one writer, so the DAG runs the chunks one at a time on any executor, as `dag.test()` does),
    each chunk through its own staging dataset: every item of the range once, and no staging dataset left."""
    database = str(tmp_path / "stac.duckdb")
    settings = {"AIRFLOW_DAG__DESTINATION": "duckdb", "DESTINATION__DUCKDB__CREDENTIALS": database}
    airflow = local_airflow(tmp_path, rustac_server.url, settings)
    airflow.run("db", "migrate")
    start, end, count = "2000-01-01T00:00:00Z", "2020-01-01T00:00:00Z", 3
    params = {"start": start, "end": end, "chunks": count}
    _, *tasks = dag_test(airflow, "terrabyte_stac_backfill", datetime(2026, 12, 6, tzinfo=timezone.utc), params)
    assert tasks == [f"terrabyte_backfill.chunk[{index}] success" for index in range(count - 1)] + [
        "terrabyte_backfill.first_chunk success",
        "terrabyte_backfill.indexes success",
        "terrabyte_backfill.later_chunks success",
    ]
    reader = dlt.pipeline("airflow_check", destination=dlt.destinations.duckdb(database),
                          dataset_name="terrabyte_stac", pipelines_dir=str(tmp_path / "check"))  # fmt: skip
    expected = acquired_within(sample_catalog, *(datetime.fromisoformat(value) for value in (start, end)))
    assert loaded_ids(reader) == expected and set(expected) == set(COLLECTIONS)
    items = sum(len(ids) for ids in expected.values())
    assert query(reader, "SELECT count(*), count(DISTINCT (collection, id)) FROM {items}") == [(items, items)]
    schemas = query(reader, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'terrabyte%'")
    assert schemas == [("terrabyte_stac",)], "the chunks' staging datasets are gone"
