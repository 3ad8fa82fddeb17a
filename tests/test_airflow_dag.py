"""The Airflow DAG (pipelines/dags/terrabyte_stac.py) run for real with `dag.test()` in Airflow's own virtualenv,
against a local STAC API: a task and a pipeline per collection, and each DAG run loads exactly the items acquired
in its data interval, into DuckDB and into Postgres (its credentials in Airflow's `dlt_secrets_toml` Variable,
which dlt reads itself: none in the DAG file or the task's environment)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dlt
import pytest

from stack import CatalogFolder, RustacServer
from tests.stac_helpers import loaded_ids, query
from tests.test_main_pipeline import PROJECT_ROOT

AIRFLOW_PYTHON = PROJECT_ROOT / ".venv-airflow" / "bin" / "python"
RUNNER = PROJECT_ROOT / "tests" / "airflow_dag_run.py"
COLLECTIONS = ["naip", "joplin"]
DAYS = ["2019-11-09", "2000-02-02"]
"""Two DAG runs' days (each its data interval, `@daily`): one with naip items, and the day of every joplin item."""
GEOMETRY_TYPE = (
    "SELECT {type_column} FROM information_schema.columns"
    " WHERE table_schema = 'terrabyte_stac' AND table_name = 'items' AND column_name = 'geometry'"
)


def airflow_environment(workdir: Path, api_url: str, destination: dict[str, str]) -> dict[str, str]:
    return {
        "PATH": f"{AIRFLOW_PYTHON.parent}:/usr/bin:/bin",
        "HOME": str(workdir),
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "pipelines" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SOURCES__STAC__URL": api_url,
        "SOURCES__STAC__COLLECTIONS": json.dumps(COLLECTIONS),
        **destination,
    }


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
    assert AIRFLOW_PYTHON.exists(), "Airflow's virtualenv: `make test` builds it (.venv-airflow)"
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
    env = airflow_environment(tmp_path, rustac_server.url, settings)
    migrated = subprocess.run([str(AIRFLOW_PYTHON.parent / "airflow"), "db", "migrate"], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    if secrets_variable:
        command = [str(AIRFLOW_PYTHON.parent / "airflow"), "variables", "set", "dlt_secrets_toml", secrets_variable]
        stored = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert stored.returncode == 0, stored.stderr

    expected: dict[str, set[str]] = {}
    for day in DAYS:
        logical_date = datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(days=1)  # its interval ends then
        command = [str(AIRFLOW_PYTHON), str(RUNNER), logical_date.isoformat()]
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        interval, *tasks = [
            line.removeprefix("dag_run: ") for line in run.stdout.splitlines() if line.startswith("dag_run: ")
        ]
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
