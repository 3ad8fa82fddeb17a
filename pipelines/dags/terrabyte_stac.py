"""An Airflow DAG of the main job: each collection of `[sources.stac] collections` in a task of its own, with a
pipeline (and state) of its own, into one dataset; each DAG run loads the items acquired in its data interval.

The tasks live in dlt's `PipelineTasksGroup`, which points dlt at this folder's `.dlt` (the project's, linked)
and at a fresh local folder, so that each task's pipeline restores its state from the destination. Each task
makes the source when it runs, where Airflow's data interval is known (`allow_external_schedulers`: a window of
acquisition time, which leaves the cursors alone), and loads it to its end in load packages (`run_in_packages`),
however many the interval needs; the group's own `add_run` runs a pipeline once, which loads one package. Into
Postgres, `geometry` is PostGIS geometry with a GIST index, as the main job loads it (unless `[main_job] postgis
= false`). The tasks run one after another: tasks of one dataset share the staging tables that dlt merges
through. With no collections configured, one task loads them all.

Settings in .dlt/config.toml (`[airflow_dag]`, `[sources.stac]`) and secrets as for the main job; on Airflow,
dlt also reads them from the environment (`SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import dlt
from airflow.decorators import dag
from airflow.operators.python import PythonOperator
from dlt.helpers.airflow_helper import PipelineTasksGroup

from dlt_stac import stac
from dlt_stac.runs import run_in_packages
from dlt_stac.spatial import create_geometry_indexes, enable_postgis, with_postgis_geometry

PIPELINE_NAME = "terrabyte"
DATASET_NAME = "terrabyte_stac"


def collection_load(pipeline_name: str, destination: str, collections: list[str] | None) -> Callable[[], None]:
    """A task's work: the collections' items of the DAG run's data interval, loaded to the end in load packages,
    by a pipeline whose local state is dropped first (the destination holds it)."""

    def load() -> None:
        pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=destination, dataset_name=DATASET_NAME)
        pipeline = pipeline.drop()
        source = stac(collections=collections, allow_external_schedulers=True)
        postgis = destination == "postgres" and dlt.config.get("main_job.postgis", bool) is not False
        if postgis:
            enable_postgis(pipeline)
            source = with_postgis_geometry(source)
        run_in_packages(pipeline, source)
        if postgis:
            create_geometry_indexes(pipeline)

    return load


def load_task(destination: str, collections: list[str] | None) -> PythonOperator:
    """The task (and its pipeline, of the same name) of `collections`; of every collection where None."""
    name = f"{PIPELINE_NAME}_{collections[0]}" if collections else PIPELINE_NAME
    return PythonOperator(task_id=name, python_callable=collection_load(name, destination, collections), retries=0)


@dag(
    dag_id="terrabyte_stac",
    schedule="@daily",
    start_date=datetime(1972, 7, 23, tzinfo=timezone.utc),  # Landsat 1, the oldest items; a backfill reaches back
    catchup=False,
    max_active_runs=1,
    tags=["dlt", "stac"],
)
def terrabyte_stac() -> None:
    group = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False)  # dlt reads .dlt here on
    destination = dlt.config.get("airflow_dag.destination", str) or "postgres"
    collections: list[str] | None = dlt.config.get("sources.stac.collections", list)
    batches = [[collection] for collection in collections] if collections else [None]
    with group:
        tasks = [load_task(destination, batch) for batch in batches]
    for earlier, later in zip(tasks, tasks[1:], strict=False):
        earlier >> later


terrabyte_stac()
