"""A reconcile run makes the tables what the API serves: it loads the items they lack (acquired before a cursor),
reloads the items whose content changed without a new `updated`, and deletes the items and collections the API
no longer has; collections outside its selection, and cursors, stay as they were."""

from __future__ import annotations

import copy
import logging
import uuid
from pathlib import Path
from typing import Any

import dlt
import pytest
from pystac_client import Client

from dlt_stac import stac
from dlt_stac.reading.reconcile import LISTING_TABLE
from dlt_stac.runs import run_in_packages
from stack import CatalogFolder, PgstacServer
from tests.stac_helpers import (
    add_items,
    delete_collection,
    delete_item,
    items_state,
    loaded_ids,
    new_collection,
    query,
    replace_item,
    rows_loaded,
    with_updated,
)
from tests.test_main_pipeline import run_main_job


def served_ids(server: PgstacServer, collections: list[str]) -> dict[str, set[str]]:
    search = Client.open(server.url).search(collections=collections, limit=100)
    served: dict[str, set[str]] = {}
    for item in search.items_as_dicts():
        served.setdefault(item["collection"], set()).add(item["id"])
    return served


def new_collections(server: PgstacServer, catalog: CatalogFolder, templates: dict[str, list[dict[str, Any]]]) -> str:
    """Collections `<prefix><template>` with the given items; returns their prefix."""
    prefix = f"rc{uuid.uuid4().hex[:6]}-"
    for template, items in templates.items():
        new_collection(server.url, catalog.files_of(template).collection(), prefix + template, items)
    return prefix


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_reconcile_leaves_the_tables_as_the_api_serves_them(
    destination: str, pgstac_server: PgstacServer, sample_catalog: CatalogFolder, request: pytest.FixtureRequest
) -> None:
    pipeline: dlt.Pipeline = request.getfixturevalue(f"{destination}_pipeline")
    naip = list(sample_catalog.files_of("naip").items())
    prefix = new_collections(
        pgstac_server,
        sample_catalog,
        {
            "naip": naip[:40],
            "joplin": list(sample_catalog.files_of("joplin").items()),
            "3dep-lidar-dsm": list(sample_catalog.files_of("3dep-lidar-dsm").items()),
        },
    )
    kept, edited_naip, gone = prefix + "3dep-lidar-dsm", prefix + "naip", prefix + "joplin"
    source_options: dict[str, Any] = {"url": pgstac_server.url, "collection_prefix": prefix, "page_size": 9}
    run_in_packages(pipeline, stac(**source_options))
    cursors_before = items_state(pipeline)

    edited = copy.deepcopy([naip[2], naip[11], naip[25]])
    for item in edited:
        item["properties"]["gsd"] = 99.0
        item["assets"]["image"]["href"] = f"https://example.org/reprocessed/{item['id']}.tif"
        replace_item(pgstac_server.url, edited_naip, item)
    removed = [naip[5]["id"], naip[6]["id"], naip[30]["id"]]
    for item_id in removed:
        delete_item(pgstac_server.url, edited_naip, item_id)
    late = copy.deepcopy(naip[45])
    late["properties"]["datetime"] = "2005-06-01T00:00:00Z"
    add_items(pgstac_server.url, edited_naip, [late])
    delete_collection(pgstac_server.url, gone)

    ordinary = run_in_packages(pipeline, stac(**source_options))
    assert ordinary.rows().get("items", 0) == 0, "an ordinary run by datetime sees none of it"
    assert ordinary.rows().get("collections", 0) == 0, "no collection changed"

    report = run_in_packages(pipeline, stac(**source_options, reconcile=True))

    assert report.reconciled == {
        edited_naip: {"added": 1, "changed": 3, "removed": 3},
        gone: {"added": 0, "changed": 0, "removed": 30},
    }
    assert report.collections_removed == [gone]
    assert report.rows()["collections"] == 3, "the two served collections reloaded, and the row deleting the gone one"
    assert loaded_ids(pipeline) == served_ids(pgstac_server, [edited_naip, kept])
    assert query(pipeline, "SELECT COUNT(*) FROM {items}") == [(38 + 4,)]
    changed = query(pipeline, "SELECT id, assets -> 'image' ->> 'href' FROM {items} WHERE gsd = 99 ORDER BY id")
    assert changed == sorted((item["id"], item["assets"]["image"]["href"]) for item in edited)
    assert sorted(row[0] for row in query(pipeline, "SELECT id FROM {collections}")) == [kept, edited_naip]
    assert {key: value for key, value in items_state(pipeline).items() if key != gone} == {
        key: value for key, value in cursors_before.items() if key != gone
    }

    again = run_in_packages(pipeline, stac(**source_options, reconcile=True))
    assert again.reconciled == {} and again.collections_removed == []
    assert again.rows().get("items", 0) == 0
    assert query(pipeline, f"SELECT COUNT(*) FROM {{{LISTING_TABLE}}}") == [(38 + 4,)]


def test_a_reconcile_loads_the_late_arrival_an_updated_cursor_cannot_see(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    prefix = new_collections(pgstac_server, sample_catalog, {"naip": with_updated(naip[:20])})
    collection_id = prefix + "naip"
    run_in_packages(duckdb_pipeline, stac(url=pgstac_server.url, collections=[collection_id]))
    assert items_state(duckdb_pipeline)[collection_id]["field"] == "updated"
    stale = copy.deepcopy(naip[21])
    stale["properties"].update(datetime="2010-05-02T00:00:00Z", updated="2023-01-01T00:00:00Z")
    add_items(pgstac_server.url, collection_id, [stale])

    run_in_packages(duckdb_pipeline, stac(url=pgstac_server.url, collections=[collection_id]))
    assert rows_loaded(duckdb_pipeline) == 0
    report = run_in_packages(duckdb_pipeline, stac(url=pgstac_server.url, collections=[collection_id], reconcile=True))

    assert report.reconciled == {collection_id: {"added": 1, "changed": 0, "removed": 0}}
    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in naip[:20]} | {stale["id"]}}


def test_the_main_job_reconciles_on_request_and_says_what_changed(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    prefix = new_collections(pgstac_server, sample_catalog, {"naip": naip[:30]})
    collection_id = prefix + "naip"
    options = ["--url", pgstac_server.url, "--collections", collection_id]
    assert run_main_job(tmp_path, *options).returncode == 0
    delete_item(pgstac_server.url, collection_id, naip[4]["id"])

    reconciled = run_main_job(tmp_path, *options, "--reconcile")
    again = run_main_job(tmp_path, *options, "--reconcile")

    assert reconciled.returncode == 0, reconciled.stderr
    lines = reconciled.stdout.splitlines()
    assert lines[lines.index("Reconciled with the API:") + 1] == (
        f"{collection_id:<32} {0:>8} added {0:>8} changed {1:>8} removed"
    )
    assert again.returncode == 0, again.stderr
    assert "Reconciled: the tables held what the API serves." in again.stdout.splitlines()


def test_a_reconcile_that_goes_on_later_keeps_what_arrived_after_its_listing(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    prefix = new_collections(pgstac_server, sample_catalog, {"naip": naip[:20]})
    collection_id = prefix + "naip"
    options: dict[str, Any] = {"url": pgstac_server.url, "collections": [collection_id]}
    run_in_packages(duckdb_pipeline, stac(**options, reconcile=True))
    arrived = copy.deepcopy(naip[20:23])
    for number, item in enumerate(arrived):
        item["properties"]["datetime"] = f"2025-0{number + 1}-01T00:00:00Z"
    add_items(pgstac_server.url, collection_id, arrived)
    run_in_packages(duckdb_pipeline, stac(**options))
    assert rows_loaded(duckdb_pipeline) == 3
    with duckdb_pipeline.managed_state() as state:  # as if that reconcile had been cut off while applying
        state["sources"]["stac"]["resources"]["reconcile"]["stage"] = "applying"

    for _ in range(2):  # one package at a time: the batch that asks for the unlisted items, then none left
        duckdb_pipeline.run(stac(**options, reconcile=True))

    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in naip[:20] + arrived}}
    assert duckdb_pipeline.state["sources"]["stac"]["resources"]["reconcile"]["stage"] == "done"


def test_a_reconcile_deletes_nothing_outside_its_selection(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    future = copy.deepcopy(naip[30])
    future["id"], future["properties"]["datetime"] = "planned-acquisition", "2099-01-01T00:00:00Z"
    first = new_collections(pgstac_server, sample_catalog, {"naip": naip[:10] + [future]}) + "naip"
    second = new_collections(pgstac_server, sample_catalog, {"naip": naip[10:20]}) + "naip"
    both: dict[str, Any] = {"url": pgstac_server.url, "collections": [first, second]}
    run_in_packages(duckdb_pipeline, stac(**both, until="2100-01-01T00:00:00Z"))
    assert rows_loaded(duckdb_pipeline) == 21

    report = run_in_packages(duckdb_pipeline, stac(**both, collection_prefix=first[:8], reconcile=True))

    assert report.reconciled == {} and report.collections_removed == []
    assert loaded_ids(duckdb_pipeline) == {
        first: {item["id"] for item in naip[:10]} | {future["id"]},
        second: {item["id"] for item in naip[10:20]},
    }


def test_pipeline_run_says_when_a_reconcile_has_more_to_do_and_what_finishes_it(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="dlt")
    monkeypatch.setattr(logging.getLogger("dlt"), "handlers", [caplog.handler])  # dlt's logger does not propagate
    prefix = new_collections(pgstac_server, sample_catalog, {"joplin": list(sample_catalog.files_of("joplin").items())})
    options: dict[str, Any] = {"url": pgstac_server.url, "collection_prefix": prefix, "page_size": 9}
    run_in_packages(duckdb_pipeline, stac(**options))

    duckdb_pipeline.run(stac(**options, reconcile=True).with_resources("reconcile"))

    warnings = [record.getMessage() for record in caplog.records if "reconcile" in record.getMessage()]
    assert warnings == [
        "stac: the reconcile has more to do than this load package holds: pipeline.run(source) loads one package "
        "per resource. Finish it with run_in_packages(pipeline, source) (from dlt_stac import run_in_packages), or "
        "run the pipeline again for the next package."
    ]
    caplog.clear()
    report = run_in_packages(duckdb_pipeline, stac(**options, reconcile=True))
    assert report.reconciled == {}, "nothing differed"
    assert not [record for record in caplog.records if record.getMessage().startswith("stac: ")]
