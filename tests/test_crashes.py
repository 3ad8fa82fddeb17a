"""`kill -9` of the main job at every moment of a run, then one re-run: it exits 0, and the destination holds
every item of the API exactly once, with the cursors of an uninterrupted run and nothing left in staging.

Each moment is a named point of dlt's extract, normalize and load steps (`tests/kill_at.py`), reached in a
real process of the main job loading the sample data from stac-fastapi-pgstac in packages of 300 items (and
a collection that loads by `updated`, whose checkpoints follow that field). The scenarios of one destination run
three at a time, each with its own working folder and dataset.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import pytest
from pystac_client import Client

from dlt_stac.planning import item_cursor
from dlt_stac.tables.rows import content_hash, item_row
from stack import CatalogFolder, PgstacServer
from tests.stac_helpers import (
    add_items,
    delete_item,
    loaded_ids,
    new_collection,
    query,
    replace_item,
    with_updated,
)
from tests.test_main_pipeline import PIPELINE, PROJECT_ROOT

KILL_AT = Path(__file__).with_name("kill_at.py")
COLLECTIONS = ["naip", "joplin", "3dep-lidar-dsm"]
PACKAGE_SIZE = ["--package-size", "300"]

EVERY_MOMENT = [
    "extract:write@3",  # in the middle of extracting the first package
    "extract:committed",  # the package is committed, the state on disk is not saved yet
    "normalize:map",
    "normalize:committed",  # the normalized package is committed, the extracted one still there
    "load:start",
    "job:start:items.*",
    "job:committed:items.*.parquet",  # DuckDB committed the staging insert; dlt did not record it
    "job:committed:_dlt_pipeline_state.*",
    "job:committed:items.*.sql",  # the merge is committed, not recorded
    "job:recorded:items.*.sql",
    "load:complete",  # `_dlt_loads` written, the package not archived
    "package:loaded@1",  # between the first and the second package
    "extract:write@9",  # in the middle of a later package
]
POSTGRES_MOMENTS = [
    "extract:committed",
    "job:committed:items.*@1",  # Postgres committed the staging insert; dlt did not record it
    "job:committed:collections.*",
    "job:committed:_dlt_pipeline_state.*",
    "job:committed:items.*.sql",
    "load:complete",
    "package:loaded@1",
]


@dataclass(frozen=True)
class Served:
    """What the API serves the main job: the collections it loads, their items, and the cursors an uninterrupted
    run ends with."""

    ids: dict[str, set[str]]
    cursors: dict[str, dict[str, Any]]
    contents: dict[tuple[str, str], str] | None = None
    """Each item's content hash as the API serves it, where the scenario checks contents too."""

    @property
    def rows(self) -> int:
        return sum(len(ids) for ids in self.ids.values())


@dataclass(frozen=True)
class Outcome:
    killed: bool
    rerun_exit: int
    rows: int
    distinct_rows: int
    ids_exact: bool
    cursors_exact: bool
    staging_rows: int
    contents_exact: bool = True


def exact_outcome(served: Served) -> Outcome:
    return Outcome(True, 0, served.rows, served.rows, True, True, 0)


def served_items(items_by_collection: dict[str, list[dict[str, Any]]], field: str = "datetime") -> Served:
    """The items of each collection, and its cursor after an uninterrupted run: the highest value of `field`
    (`datetime`, else `start_datetime`; or `updated`), and the ids at it."""
    cursors = {}
    for collection, items in items_by_collection.items():
        rows = [item_row(item) for item in items]
        value_of = item_cursor if field == "datetime" else lambda row: row[field]
        highest = max(value_of(row) for row in rows)
        ids = sorted(row["id"] for row in rows if value_of(row) == highest)
        cursor = {"value": highest.isoformat().replace("+00:00", "Z"), "ids": ids}
        cursors[collection] = cursor if field == "datetime" else {**cursor, "field": field}
    ids = {collection: {item["id"] for item in items} for collection, items in items_by_collection.items()}
    return Served(ids, cursors)


@pytest.fixture()
def sample_served(sample_catalog: CatalogFolder) -> Served:
    return served_items({collection: list(sample_catalog.files_of(collection).items()) for collection in COLLECTIONS})


def main_job(
    workdir: Path, env: dict[str, str], arguments: list[str], kill_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    script = [str(KILL_AT)] if kill_at else [str(PIPELINE)]
    return subprocess.run(
        [sys.executable, *script, *PACKAGE_SIZE, *arguments],
        cwd=workdir,
        env={**env, **({"KILL_AT": kill_at} if kill_at else {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass(frozen=True)
class Destination:
    arguments: list[str]
    """The main job's arguments that choose it."""
    env: dict[str, str]
    pipeline_of: Callable[[Path], dlt.Pipeline]
    """The main job's pipeline in a working folder, opened from its state on disk."""


def job_env(workdir: Path, destination: Destination) -> dict[str, str]:
    return {**destination.env, "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(workdir / "dlt")}


def killed_then_rerun(
    moment: str, workdir: Path, destination: Destination, served: Served, options: tuple[str, ...] = ()
) -> Outcome:
    workdir.mkdir(exist_ok=True)
    env = job_env(workdir, destination)
    arguments = ["--collections", *served.ids, *destination.arguments, *options]
    killed = main_job(workdir, env, arguments, kill_at=moment)
    rerun = main_job(workdir, env, arguments)
    assert rerun.returncode == 0, f"{moment}: the re-run failed:\n{rerun.stdout[-2000:]}\n{rerun.stderr[-3000:]}"
    pipeline = destination.pipeline_of(workdir)
    [(rows, distinct_rows)] = query(pipeline, "SELECT COUNT(*), COUNT(DISTINCT collection || '/' || id) FROM {items}")
    return Outcome(
        killed=killed.returncode == -9 and "KILLED AT" in killed.stderr,
        rerun_exit=rerun.returncode,
        rows=rows,
        distinct_rows=distinct_rows,
        ids_exact=loaded_ids(pipeline) == served.ids,
        cursors_exact=pipeline.state["sources"]["stac"]["resources"]["items"]["cursors"] == served.cursors,
        staging_rows=staging_rows(pipeline),
        contents_exact=served.contents is None or contents_of(pipeline) == served.contents,
    )


def contents_of(pipeline: dlt.Pipeline) -> dict[tuple[str, str], str]:
    return {
        (collection, item_id): digest
        for collection, item_id, digest in query(pipeline, "SELECT collection, id, content_hash FROM {items}")
    }


def staging_rows(pipeline: dlt.Pipeline) -> int:
    with pipeline.sql_client() as client, client.with_staging_dataset():
        [(rows,)] = client.execute_sql(f"SELECT COUNT(*) FROM {client.make_qualified_table_name('items')}")
        return int(rows)


def outcomes_of(moments: list[str], run: Callable[[str], Outcome]) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(moments, pool.map(run, moments), strict=True))


def attached(workdir: Path, destination: Any) -> dlt.Pipeline:
    """The main job's pipeline, as it names it for the destination (`terrabyte`, `terrabyte_postgres`)."""
    name = "terrabyte" if destination.destination_name == "duckdb" else f"terrabyte_{destination.destination_name}"
    return dlt.attach(name, pipelines_dir=str(workdir / "dlt" / "pipelines"), destination=destination)


def first_loads(tmp_path: Path, moments: list[str], destination: Destination, collection_id: str) -> None:
    """The main job's first load of the collection in each moment's working folder, before the API changes."""

    def first_load(moment: str) -> subprocess.CompletedProcess[str]:
        workdir = tmp_path / folder_of(moment)
        workdir.mkdir()
        return main_job(workdir, job_env(workdir, destination), ["--collections", collection_id])

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert [loaded.returncode for loaded in pool.map(first_load, moments)] == [0] * len(moments)


def folder_of(moment: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in moment)


def duckdb_destination(api_url: str) -> Destination:
    return Destination(
        arguments=[],
        env={**os.environ, "SOURCES__STAC__URL": api_url},
        pipeline_of=lambda folder: attached(folder, dlt.destinations.duckdb(str(folder / "terrabyte.duckdb"))),
    )


def test_a_kill_at_any_moment_then_one_rerun_loads_every_item_once_into_duckdb(
    pgstac_server: PgstacServer, sample_served: Served, tmp_path: Path
) -> None:
    duckdb = duckdb_destination(pgstac_server.url)

    def run(moment: str) -> Outcome:
        return killed_then_rerun(moment, tmp_path / folder_of(moment), duckdb, sample_served)

    outcomes = outcomes_of(EVERY_MOMENT, run)

    assert outcomes == {moment: exact_outcome(sample_served) for moment in EVERY_MOMENT}


def test_a_kill_while_loading_by_updated_then_one_rerun_loads_every_item_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    collection_id = f"naip-updated-{uuid.uuid4().hex[:8]}"
    items = with_updated(list(sample_catalog.files_of("naip").items()))
    new_collection(pgstac_server.url, sample_catalog.files_of("naip").collection(), collection_id, items)
    served = served_items({collection_id: items}, field="updated")
    moments = [
        "extract:write@3",
        "job:committed:items.*.parquet",
        "job:committed:items.*.sql",
        "package:loaded@1",
        "extract:write@9",
    ]

    duckdb = duckdb_destination(pgstac_server.url)

    def run(moment: str) -> Outcome:
        return killed_then_rerun(moment, tmp_path / folder_of(moment), duckdb, served)

    outcomes = outcomes_of(moments, run)

    assert outcomes == {moment: exact_outcome(served) for moment in moments}


def test_a_kill_while_reading_late_arrivals_then_one_rerun_loads_every_item_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    """900 items acquired in 2010 arrive, with `updated`, in a collection that loads by `datetime`: the run after
    reads them in two packages (`reading/late_arrivals.py`), and is killed while it does."""
    collection_id = f"naip-late-{uuid.uuid4().hex[:8]}"
    naip = list(sample_catalog.files_of("naip").items())
    first = naip[:100]  # no item carries `updated`
    new_collection(pgstac_server.url, sample_catalog.files_of("naip").collection(), collection_id, first)
    moments = ["extract:write@2", "job:committed:items.*.sql@1", "package:loaded@1", "extract:write@3"]
    duckdb = duckdb_destination(pgstac_server.url)

    first_loads(tmp_path, moments, duckdb, collection_id)
    late = copy.deepcopy(naip[100:])
    for number, item in enumerate(late):  # three items share each `updated`, the newest too
        day, half_hour = 1 + number // 48, number % 48
        item["properties"]["datetime"] = f"2010-01-{day:02d}T{half_hour // 2:02d}:{half_hour % 2 * 30:02d}:00Z"
        item["properties"]["updated"] = f"2025-01-01T{number // 3 // 60:02d}:{number // 3 % 60:02d}:00Z"
    add_items(pgstac_server.url, collection_id, late)
    newest = late[-1]["properties"]["updated"]
    served = Served(
        {collection_id: {item["id"] for item in first + late}},
        {
            collection_id: {
                **loaded_cursor(first),
                "late": {"value": newest, "ids": sorted(i["id"] for i in late if i["properties"]["updated"] == newest)},
            }
        },
    )

    def run(moment: str) -> Outcome:
        return killed_then_rerun(moment, tmp_path / folder_of(moment), duckdb, served)

    outcomes = outcomes_of(moments, run)

    assert outcomes == {moment: exact_outcome(served) for moment in moments}


@pytest.mark.parametrize("server_fixture", ["rustac_server", "geoparquet_server"])
def test_a_kill_on_a_server_that_does_not_sort_as_pgstac_then_one_rerun_loads_every_item_once(
    server_fixture: str, sample_served: Served, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """rustac does not sort (a part is read again from its start after a kill); stac-fastapi-geoparquet sorts by
    bare names only and cannot be asked about several collections at once (`tests/test_compatibility.py`)."""
    duckdb = duckdb_destination(request.getfixturevalue(server_fixture).url)
    moments = ["job:committed:items.*.parquet", "package:loaded@1"]  # the re-run resumes a part of a window

    def run(moment: str) -> Outcome:
        return killed_then_rerun(moment, tmp_path / folder_of(moment), duckdb, sample_served)

    outcomes = outcomes_of(moments, run)

    assert outcomes == {moment: exact_outcome(sample_served) for moment in moments}


def test_a_kill_at_any_moment_then_one_rerun_loads_every_item_once_into_postgres(
    pgstac_server: PgstacServer, sample_served: Served, tmp_path: Path
) -> None:
    def run(moment: str) -> Outcome:
        database = f"crash_{folder_of(moment)}"
        pgstac_server.cluster.create_database(database)
        url = pgstac_server.cluster.url(database)
        postgres = Destination(
            arguments=["--destination", "postgres"],
            env={**os.environ, "SOURCES__STAC__URL": pgstac_server.url, "DESTINATION__POSTGRES__CREDENTIALS": url},
            pipeline_of=lambda folder: attached(folder, dlt.destinations.postgres(url)),
        )
        return killed_then_rerun(moment, tmp_path / database, postgres, sample_served)

    outcomes = outcomes_of(POSTGRES_MOMENTS, run)

    assert outcomes == {moment: exact_outcome(sample_served) for moment in POSTGRES_MOMENTS}


def test_a_package_dlt_aborts_is_named_by_the_next_run_and_its_items_load_again(
    pgstac_server: PgstacServer, sample_served: Served, tmp_path: Path
) -> None:
    """A UNIQUE index on `_dlt_id` (`create_indexes = true`) makes dlt abort the package whose replayed job it
    refuses; the cursors had moved with that package's extract. The next run must load its items again."""
    pgstac_server.cluster.create_database("crash_aborted")
    url = pgstac_server.cluster.url("crash_aborted")
    env = {
        **os.environ,
        "SOURCES__STAC__URL": pgstac_server.url,
        "DESTINATION__POSTGRES__CREDENTIALS": url,
        "DESTINATION__POSTGRES__CREATE_INDEXES": "true",
        "DLT_PROJECT_DIR": str(PROJECT_ROOT),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    arguments = ["--collections", *sample_served.ids, "--destination", "postgres"]

    killed = main_job(tmp_path, env, arguments, kill_at="job:committed:collections.*")
    aborted = main_job(tmp_path, env, arguments)
    rerun = main_job(tmp_path, env, arguments)

    assert killed.returncode == -9
    assert aborted.returncode == 1
    assert 'duplicate key value violates unique constraint "collections__dlt_id_key"' in aborted.stderr
    assert rerun.returncode == 0, rerun.stderr
    pipeline = attached(tmp_path, dlt.destinations.postgres(url))
    assert query(pipeline, "SELECT COUNT(*), COUNT(DISTINCT collection || '/' || id) FROM {items}") == [
        (sample_served.rows, sample_served.rows)
    ]
    assert pipeline.state["sources"]["stac"]["resources"]["items"]["cursors"] == sample_served.cursors
    [restored] = [line for line in rerun.stdout.splitlines() if line.startswith("Restored: ")]
    assert restored.startswith("Restored: load package ")
    assert restored.endswith(
        "of an earlier run could not be completed (dlt aborted it): the cursors went back to those of the last"
        " package terrabyte_stac holds, and its items load again."
    )


def test_a_kill_during_a_reconcile_then_one_rerun_leaves_the_tables_as_the_api_serves_them(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    collection_id = f"naip-reconciled-{uuid.uuid4().hex[:8]}"
    naip = list(sample_catalog.files_of("naip").items())[:700]
    new_collection(pgstac_server.url, sample_catalog.files_of("naip").collection(), collection_id, naip)
    moments = [
        "extract:write@2",  # listing its first package
        "job:committed:_stac_listing.*@1",
        "package:loaded@2",  # between the listing's packages
        "job:committed:items.*.sql@1",  # applying: the merge of its batch committed, not recorded
        "load:complete@4",  # the batch applied, the package not archived
    ]
    duckdb = duckdb_destination(pgstac_server.url)

    first_loads(tmp_path, moments, duckdb, collection_id)
    for item in naip[10:13]:
        delete_item(pgstac_server.url, collection_id, item["id"])
    for item in copy.deepcopy(naip[100:102]):
        item["properties"]["gsd"] = 99.0
        replace_item(pgstac_server.url, collection_id, item)
    late = copy.deepcopy(naip[0])
    late["id"], late["properties"]["datetime"] = "late-arrival", "2001-01-01T00:00:00Z"
    add_items(pgstac_server.url, collection_id, [late])
    served_now = list(Client.open(pgstac_server.url).search(collections=[collection_id], limit=200).items_as_dicts())
    served = served_items({collection_id: served_now})
    served = Served(
        served.ids,
        {collection_id: loaded_cursor(naip)},
        {(collection_id, item["id"]): content_hash(item) for item in served_now},
    )

    def run(moment: str) -> Outcome:
        return killed_then_rerun(moment, tmp_path / folder_of(moment), duckdb, served, ("--reconcile",))

    outcomes = outcomes_of(moments, run)

    assert outcomes == {moment: exact_outcome(served) for moment in moments}


def loaded_cursor(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The cursor of the first load, which a reconcile leaves where it was."""
    return served_items({"loaded": items}).cursors["loaded"]
