"""An Airflow DAG of the main job: each collection of `[sources.stac] collections` in a task of its own, with a
pipeline (and state) of its own, into one dataset; each DAG run loads the items acquired in its data interval.

dlt's `PipelineTasksGroup` runs the tasks: it points dlt at this folder's `.dlt` (the project's, linked) and at a
fresh local folder per task, so each task restores its pipeline's state from the destination, and wipes it
after. The source is made inside the task, where Airflow's data interval is known
(`allow_external_schedulers`: a window of acquisition time, which leaves the cursors alone), and loaded to its
end in load packages (`run_in_packages`), however many the interval needs: the helper's own run loads one. With
no collections configured, one task loads them all.

Settings in .dlt/config.toml (`[airflow_dag]`, `[sources.stac]`) and secrets as for the main job; on Airflow,
dlt also reads them from the environment (`SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN`, ...).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import dlt
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

from dlt_stac import stac
from dlt_stac.runs import run_in_packages

PIPELINE_NAME = "terrabyte"
DATASET_NAME = "terrabyte_stac"


def collection_load(pipeline_name: str, destination: str, collections: list[str] | None) -> Any:
    """What a task loads, made when it runs: the collections' items of the DAG run's data interval, loaded to
    the end in load packages; nothing is left for the helper's own run of the pipeline."""

    def load() -> list[Any]:
        pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=destination, dataset_name=DATASET_NAME)
        run_in_packages(pipeline, stac(collections=collections, allow_external_schedulers=True))
        return []

    return load


@dag(
    dag_id="terrabyte_stac",
    schedule="@daily",
    start_date=datetime(1972, 7, 23, tzinfo=timezone.utc),  # Landsat 1, the oldest items; a backfill reaches back
    catchup=False,
    max_active_runs=1,
    tags=["dlt", "stac"],
)
def terrabyte_stac() -> None:
    tasks = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)  # dlt reads .dlt here on
    destination = dlt.config.get("airflow_dag.destination", str) or "postgres"
    collections: list[str] | None = dlt.config.get("sources.stac.collections", list)
    groups = [[collection] for collection in collections] if collections else [None]
    for group in groups:
        name = f"{PIPELINE_NAME}_{group[0]}" if group else PIPELINE_NAME
        pipeline = dlt.pipeline(pipeline_name=name, destination=destination, dataset_name=DATASET_NAME)
        load = collection_load(name, destination, group)
        tasks.add_run(pipeline, load, decompose="none", table_name="items", retries=0)  # an empty list needs a name


terrabyte_stac()
