"""Airflow DAGs of the main job, into one dataset: `terrabyte_stac`, each run the items acquired in its data
interval, a task per collection of `[sources.stac] collections`; and `terrabyte_stac_backfill`, triggered with a
time range, which splits it into time chunks that load in parallel tasks.

The tasks live in dlt's `PipelineTasksGroup`, which points dlt at this folder's `.dlt` (the project's, linked)
and at a fresh local folder, so that each task's pipeline restores its state from the destination. Each task
makes the source when it runs, where its window is known (`allow_external_schedulers`: a half-open window of
acquisition time, which leaves the cursors alone), and loads it to its end in load packages (`run_in_packages`),
however many the window needs; the group's own `add_run` runs a pipeline once, which loads one package. Into
Postgres, `geometry` is PostGIS geometry with a GIST index, as the main job loads it (unless `[main_job] postgis
= false`).

Tasks that load into one dataset at once must not share the staging tables dlt merges through: the scheduled
DAG's tasks run one after another; a backfill's chunks each merge through a staging dataset of their own, and
the first chunk runs alone, as dlt's `decompose="parallel-isolated"` does, so that it creates the tables the
others then share. Into DuckDB, which takes one writer, the chunks run one at a time.

Settings in .dlt/config.toml (`[airflow_dag]`, `[sources.stac]`) and secrets as for the main job; on Airflow,
dlt also reads them from the environment (`SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN`, ...) or from the Airflow
Variable `dlt_secrets_toml`.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
from airflow.decorators import dag, task
from airflow.models.param import Param
from airflow.operators.python import PythonOperator
from dlt.common.configuration.container import Container
from dlt.common.destination import Destination
from dlt.extract.incremental.context import TimeIntervalContext
from dlt.helpers.airflow_helper import PipelineTasksGroup

from dlt_stac import stac
from dlt_stac.runs import RunReport, run_in_packages
from dlt_stac.tables.spatial import create_geometry_indexes, enable_postgis, with_postgis_geometry

PIPELINE_NAME = "terrabyte"
BACKFILL_NAME = "terrabyte_backfill"
DATASET_NAME = "terrabyte_stac"
LANDSAT_1 = datetime(1972, 7, 23, tzinfo=timezone.utc)
"""The oldest items' day: where a backfill may reach back to."""
log = logging.getLogger("airflow.task")


def configured_destination() -> str:
    return dlt.config.get("airflow_dag.destination", str) or "postgres"


def configured_collections() -> list[str] | None:
    return dlt.config.get("sources.stac.collections", list)


def postgis_wanted(destination: str) -> bool:
    return destination == "postgres" and dlt.config.get("main_job.postgis", bool) is not False


def load_to_the_end(
    pipeline_name: str,
    destination: str,
    collections: list[str] | None,
    interval: tuple[datetime, datetime] | None = None,
    staging_dataset: str | None = None,
) -> tuple[dlt.Pipeline, RunReport]:
    """Loads the collections' items of `interval` (else of the task's data interval) to the end in load packages,
    by a pipeline whose local state is dropped first (the destination holds it), through `staging_dataset` (a
    dlt `staging_dataset_name_layout`) where given; returns the pipeline and what it loaded."""
    settings = {"staging_dataset_name_layout": staging_dataset} if staging_dataset else {}
    target = Destination.from_reference(destination, **settings)
    pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=target, dataset_name=DATASET_NAME).drop()
    with Container().injectable_context(TimeIntervalContext(interval=interval)):
        source = stac(collections=collections, allow_external_schedulers=True)
    if postgis_wanted(destination):
        enable_postgis(pipeline)
        source = with_postgis_geometry(source)
    return pipeline, run_in_packages(pipeline, source)


def collection_load(pipeline_name: str, destination: str, collections: list[str] | None) -> Callable[[], None]:
    """A scheduled task's work: the collections' items of the DAG run's data interval, then the missing indexes."""

    def load() -> None:
        pipeline, _ = load_to_the_end(pipeline_name, destination, collections)
        if postgis_wanted(destination):
            create_geometry_indexes(pipeline)

    return load


def load_task(destination: str, collections: list[str] | None) -> PythonOperator:
    """The task (and its pipeline, of the same name) of `collections`; of every collection where None."""
    name = f"{PIPELINE_NAME}_{collections[0]}" if collections else PIPELINE_NAME
    return PythonOperator(task_id=name, python_callable=collection_load(name, destination, collections), retries=0)


@dag(
    dag_id="terrabyte_stac",
    schedule="@daily",
    start_date=LANDSAT_1,
    catchup=False,
    max_active_runs=1,
    tags=["dlt", "stac"],
)
def terrabyte_stac() -> None:
    group = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False)  # dlt reads .dlt here on
    destination = configured_destination()
    collections = configured_collections()
    batches = [[collection] for collection in collections] if collections else [None]
    with group:
        tasks = [load_task(destination, batch) for batch in batches]
    for earlier, later in zip(tasks, tasks[1:], strict=False):
        earlier >> later


def time_chunks(start: datetime, end: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """`[start, end)` cut into `count` half-open chunks of equal length (to the second) that follow one another."""
    if count < 1 or start >= end:
        raise ValueError(f"a backfill needs a start before its end and 1 or more chunks, got {start} .. {end}, {count}")
    step = timedelta(seconds=(end - start).total_seconds() // count)
    if not step:
        raise ValueError(f"{count} chunks of {start} .. {end} would be shorter than a second")
    cuts = [start + step * index for index in range(count)] + [end]
    return list(zip(cuts, cuts[1:], strict=False))


def utc_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def chunk_pipeline_name(index: int) -> str:
    return f"{BACKFILL_NAME}_{index}"


def planned_chunks(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The backfill's chunks, from the DAG run's `start`, `end` and `chunks`, as a chunk task's arguments."""
    cut = time_chunks(utc_timestamp(params["start"]), utc_timestamp(params["end"]), int(params["chunks"]))
    return [
        {"index": index, "start": start.isoformat(), "end": end.isoformat()} for index, (start, end) in enumerate(cut)
    ]


def chunk_load(index: int, start: str, end: str) -> None:
    """A backfill chunk's work: its items, by a pipeline and through a staging dataset of its own, which goes
    once they are merged. Its log says what it loaded and the task process's peak memory, to size workers by."""
    pipeline, report = load_to_the_end(
        chunk_pipeline_name(index),
        configured_destination(),
        configured_collections(),
        interval=(utc_timestamp(start), utc_timestamp(end)),
        staging_dataset=f"%s_staging_{index}",
    )
    with pipeline.sql_client() as client, client.with_staging_dataset():
        if client.has_dataset():
            client.drop_dataset()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    items = report.rows().get("items", 0)
    log.info(f"Backfill chunk {index} [{start}, {end}): {items} items in {len(report.packages)} load packages, "
             f"peak RSS {peak_mb} MB")  # fmt: skip


def first_chunk_load(params: dict[str, Any]) -> None:
    chunk_load(**planned_chunks(params)[0])


def backfill_indexed(params: dict[str, Any]) -> None:
    """Creates the missing GIST indexes on `geometry` (PostGIS only), in the tables of the schema that the first
    chunk's pipeline with a state in the destination restores (the chunks share one schema)."""
    destination = configured_destination()
    if not postgis_wanted(destination):
        return
    for chunk in planned_chunks(params):
        pipeline = dlt.pipeline(chunk_pipeline_name(chunk["index"]), destination=destination, dataset_name=DATASET_NAME)
        pipeline = pipeline.drop()
        pipeline.sync_destination()
        if pipeline.default_schema_name is not None:
            create_geometry_indexes(pipeline)
            return


@dag(
    dag_id="terrabyte_stac_backfill",
    schedule=None,
    start_date=LANDSAT_1,
    catchup=False,
    max_active_runs=1,
    params={
        "start": Param(type="string", description="Acquired at or after (RFC 3339; UTC where no offset)"),
        "end": Param(type="string", description="Acquired before (RFC 3339; UTC where no offset)"),
        "chunks": Param(4, type="integer", minimum=1, description="Time chunks, a task each, in parallel"),
    },
    tags=["dlt", "stac"],
)
def terrabyte_stac_backfill() -> None:
    group = PipelineTasksGroup(BACKFILL_NAME, use_data_folder=False)
    one_writer = configured_destination() != "postgres"

    @task
    def later_chunks(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The chunks after the first, which run in parallel once the first has created the tables."""
        assert params is not None
        return planned_chunks(params)[1:]

    retried = {"retries": 2, "retry_delay": timedelta(seconds=20)}  # a chunk that met another's change of a table
    with group:
        first = PythonOperator(task_id="first_chunk", python_callable=first_chunk_load, **retried)
        rest = PythonOperator.partial(
            task_id="chunk", python_callable=chunk_load, max_active_tis_per_dagrun=1 if one_writer else None, **retried
        ).expand(op_kwargs=later_chunks())
        indexes = PythonOperator(task_id="indexes", python_callable=backfill_indexed)
        first >> rest >> indexes


terrabyte_stac()
terrabyte_stac_backfill()
