"""Collections whose items carry `updated` load by it, where the API can filter on it: an edit that keeps an item's
`datetime`, and a late arrival acquired long before the cursor, reach the tables with the next ordinary run, and
a run with nothing new reads a page, not every item that shares the cursor's datetime. Other collections load by
`datetime`, as before."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import dlt
import pytest

from dlt_stac import stac
from stack import CatalogFolder, PgstacServer, RustacServer
from stack.fault_proxy import FaultProxy, Faults
from tests.stac_helpers import (
    add_items,
    items_state,
    loaded_ids,
    new_collection,
    query,
    replace_item,
    rows_loaded,
    with_updated,
)

SORT_PROBE = 1
"""The `limit=1` search with which a run finds out, once, how the API sorts (`Capabilities.sort_prefix`)."""
FILTER_PROBE = 1
"""The `limit=1` search with which a run finds out, once, whether the API's filters hold as CQL2 defines them
(`Capabilities.filters_hold`), before it asks about several collections at once or leaves ids out."""


def searches_sent(faults: Faults, method: str) -> list[tuple[str, str]]:
    """The searches the proxy saw sent by `method`; it saw none sent by the other."""
    searches = [(sent, path) for sent, path in faults.requests if path.startswith("/search")]
    assert {sent for sent, _ in searches} <= {method}
    return searches


def collection_of(server: PgstacServer, catalog: CatalogFolder, template: str, items: list[dict[str, Any]]) -> str:
    collection_id = f"{template}-updated-{uuid.uuid4().hex[:8]}"
    return new_collection(server.url, catalog.files_of(template).collection(), collection_id, items)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_an_edit_that_keeps_the_datetime_is_loaded_by_the_next_run(
    destination: str, pgstac_server: PgstacServer, sample_catalog: CatalogFolder, request: pytest.FixtureRequest
) -> None:
    pipeline: dlt.Pipeline = request.getfixturevalue(f"{destination}_pipeline")
    items = with_updated(list(sample_catalog.files_of("naip").items())[:40])
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", items)

    pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=9))
    assert rows_loaded(pipeline) == 40
    assert items_state(pipeline)[collection_id] == {
        "value": "2024-03-01T00:39:00Z",
        "ids": [items[-1]["id"]],
        "field": "updated",
    }

    edited = copy.deepcopy([items[3], items[17], items[28]])
    for number, item in enumerate(edited):
        item["properties"].update(gsd=99.0, updated=f"2025-06-01T00:00:0{number}Z")
        item["assets"]["image"]["href"] = f"https://example.org/reprocessed/{item['id']}.tif"
        replace_item(pgstac_server.url, collection_id, item)

    pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=9))

    assert rows_loaded(pipeline) == 3
    assert query(pipeline, "SELECT COUNT(*) FROM {items}") == [(40,)]
    assert loaded_ids(pipeline) == {collection_id: {item["id"] for item in items}}
    changed = query(pipeline, "SELECT id, gsd, assets -> 'image' ->> 'href' FROM {items} WHERE gsd = 99 ORDER BY id")
    assert changed == sorted((item["id"], 99.0, item["assets"]["image"]["href"]) for item in edited)
    assert items_state(pipeline)[collection_id]["value"] == "2025-06-01T00:00:02Z"
    pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=9))
    assert rows_loaded(pipeline) == 0


def test_an_edit_of_the_item_at_the_cursor_is_loaded_in_a_run_over_several_collections(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = with_updated(list(sample_catalog.files_of("naip").items())[:10])
    edited_collection, other = (collection_of(pgstac_server, sample_catalog, "naip", naip) for _ in range(2))
    load = {"url": pgstac_server.url, "collections": [edited_collection, other]}
    duckdb_pipeline.run(stac(**load))
    assert items_state(duckdb_pipeline)[edited_collection]["ids"] == [naip[-1]["id"]]

    edited = copy.deepcopy(naip[-1])
    edited["properties"].update(gsd=99.0, updated="2025-06-01T00:00:00Z")
    replace_item(pgstac_server.url, edited_collection, edited)
    duckdb_pipeline.run(stac(**load))

    assert rows_loaded(duckdb_pipeline) == 1, "the item loaded at the cursor, edited since"
    assert query(duckdb_pipeline, "SELECT collection, id FROM {items} WHERE gsd = 99") == [
        (edited_collection, edited["id"])
    ]
    assert items_state(duckdb_pipeline)[edited_collection]["value"] == "2025-06-01T00:00:00Z"


def test_a_late_arrival_with_a_new_updated_is_loaded_whatever_its_datetime(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    items = with_updated(naip[:20])
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", items)
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id]))
    assert rows_loaded(duckdb_pipeline) == 20

    late, stale = copy.deepcopy(naip[20:22])
    late["id"], stale["id"] = "acquired-2010-ingested-now", "acquired-2010-updated-long-ago"
    late["properties"].update(datetime="2010-05-01T00:00:00Z", updated="2025-01-01T00:00:00Z")
    stale["properties"].update(datetime="2010-05-02T00:00:00Z", updated="2023-01-01T00:00:00Z")
    add_items(pgstac_server.url, collection_id, [late, stale])

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id]))

    assert rows_loaded(duckdb_pipeline) == 1
    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in items} | {late["id"]}}


@pytest.mark.parametrize("other_collections", [0, 1])
def test_a_late_arrival_that_carries_updated_loads_where_its_collection_loads_by_datetime(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline, other_collections: int
) -> None:
    """With another collection, the run asks about the late arrivals of both in one search first."""
    naip = list(sample_catalog.files_of("naip").items())
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", naip[:20])  # no item carries `updated`
    others = [collection_of(pgstac_server, sample_catalog, "naip", naip[20:25]) for _ in range(other_collections)]
    load = {"url": pgstac_server.url, "collections": [collection_id, *others]}
    duckdb_pipeline.run(stac(**load))
    cursor = items_state(duckdb_pipeline)[collection_id]
    assert "field" not in cursor and "late" not in cursor

    late = copy.deepcopy(naip[30])
    late["id"] = "acquired-2010-ingested-now"
    late["properties"].update(datetime="2010-05-01T00:00:00Z", updated="2025-01-01T00:00:00Z")
    add_items(pgstac_server.url, collection_id, [late])
    duckdb_pipeline.run(stac(**load))

    assert rows_loaded(duckdb_pipeline) == 1
    assert loaded_ids(duckdb_pipeline)[collection_id] == {item["id"] for item in naip[:20]} | {late["id"]}
    assert items_state(duckdb_pipeline)[collection_id] == {
        **cursor,
        "late": {"value": "2025-01-01T00:00:00Z", "ids": [late["id"]]},
    }, "the late arrival moves its own cursor, not the collection's"

    edited, stale = copy.deepcopy(naip[3]), copy.deepcopy(naip[31])
    edited["properties"].update(gsd=99.0, updated="2025-02-01T00:00:00Z")
    replace_item(pgstac_server.url, collection_id, edited)
    stale["id"] = "acquired-2010-updated-before-the-newest-loaded"
    stale["properties"].update(datetime="2010-05-02T00:00:00Z", updated="2024-06-01T00:00:00Z")
    add_items(pgstac_server.url, collection_id, [stale])
    duckdb_pipeline.run(stac(**load))

    assert rows_loaded(duckdb_pipeline) == 1
    assert query(duckdb_pipeline, "SELECT id FROM {items} WHERE gsd = 99") == [(edited["id"],)]
    late_cursor = items_state(duckdb_pipeline)[collection_id]["late"]
    assert late_cursor == {"value": "2025-02-01T00:00:00Z", "ids": [edited["id"]]}

    at_cursor = copy.deepcopy(next(item for item in naip[:20] if item["id"] == cursor["ids"][0]))
    at_cursor["properties"].update(gsd=98.0, updated="2025-03-01T00:00:00Z")
    replace_item(pgstac_server.url, collection_id, at_cursor)
    duckdb_pipeline.run(stac(**load))

    assert rows_loaded(duckdb_pipeline) == 1, "an edit of an item loaded at exactly the datetime cursor"
    assert query(duckdb_pipeline, "SELECT id FROM {items} WHERE gsd = 98") == [(at_cursor["id"],)]
    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        duckdb_pipeline.run(stac(**{**load, "url": proxy.url}))
    assert rows_loaded(duckdb_pipeline) == 0
    if other_collections:
        # one search asks about both collections' new windows, one about their late arrivals, which leaves out
        # the item loaded at the late cursor: no collection is read
        assert len(searches_sent(faults, "POST")) == SORT_PROBE + FILTER_PROBE + 1 + 1


def test_after_a_kill_in_a_first_load_the_late_read_leaves_the_part_left_to_the_part(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    """A kill three items into a collection's first load leaves its whole window as one part, and no `late` cursor:
    the late read asks only for the items acquired outside that part (none here), not for every item that
    carries `updated`, page after page, to drop them on the client."""
    naip = copy.deepcopy(list(sample_catalog.files_of("naip").items())[:20])
    for day, item in enumerate(naip, start=1):
        item["properties"]["datetime"] = f"2020-01-{day:02d}T00:00:00Z"
    items = naip[:10] + with_updated(naip[10:])  # some items lack `updated`: the collection loads by `datetime`
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", items)
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id]))
    with duckdb_pipeline.managed_state() as state:
        read_to = {"value": "2020-01-03T00:00:00Z", "ids": [items[2]["id"]]}
        part = {"start": None, "end": "2025-12-01T00:00:00Z", "end_excluded": True, "read_to": read_to}
        state["sources"]["stac"]["resources"]["items"]["cursors"][collection_id] = {**read_to, "parts": [part]}

    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        duckdb_pipeline.run(stac(url=proxy.url, collections=[collection_id], page_size=4))

    assert rows_loaded(duckdb_pipeline) == 17, "the part, from its fourth item on"
    # the probes of the API's sort and filters; the part's 17 items in 5 pages; a probe of the new window, empty;
    # the late read's one empty page (its 10 items that carry `updated`, in 3 pages, if it asked for them)
    assert len(searches_sent(faults, "POST")) == SORT_PROBE + FILTER_PROBE + 5 + 1 + 1
    assert items_state(duckdb_pipeline)[collection_id]["late"] == {
        "value": "2024-03-01T00:09:00Z",
        "ids": [items[-1]["id"]],
    }


def test_a_run_that_cannot_filter_on_updated_keeps_the_late_cursor(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    """A run through a server that does not sort (this time) cannot read late arrivals; the next one that can goes
    on from the same `late` cursor, not from the first item that carries `updated`."""
    naip = list(sample_catalog.files_of("naip").items())
    items = with_updated(naip[:6]) + naip[6:20]  # some items lack `updated`: the collection loads by `datetime`
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", items)
    load = {"url": pgstac_server.url, "collections": [collection_id]}
    duckdb_pipeline.run(stac(**load))
    checkpoint = items_state(duckdb_pipeline)[collection_id]
    assert checkpoint["late"] == {"value": "2024-03-01T00:05:00Z", "ids": [items[5]["id"]]}

    with FaultProxy(pgstac_server.url, Faults(refused_sort_fields=".")) as proxy:
        duckdb_pipeline.run(stac(**{**load, "url": proxy.url}))
    assert rows_loaded(duckdb_pipeline) == 0
    assert items_state(duckdb_pipeline)[collection_id] == checkpoint
    duckdb_pipeline.run(stac(**load))
    assert rows_loaded(duckdb_pipeline) == 0, "the items that carry `updated` were loaded before"


def test_late_arrivals_load_once_where_an_interrupted_run_left_a_part_below_a_finished_one(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    """A kill leaves the checkpoint of a window cut in two parts: the earlier read to its third item, the later read
    to its end (the cursor). Edits since then, acquired in either part's range, load once each."""
    naip = copy.deepcopy(list(sample_catalog.files_of("naip").items())[:20])
    for day, item in enumerate(naip, start=1):
        item["properties"]["datetime"] = f"2020-01-{day:02d}T00:00:00Z"
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", naip)  # no item carries `updated`
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id]))
    times = [item["properties"]["datetime"] for item in naip]
    with duckdb_pipeline.managed_state() as state:
        checkpoint = state["sources"]["stac"]["resources"]["items"]["cursors"][collection_id]
        read_to = {"value": times[2], "ids": [naip[2]["id"]]}
        checkpoint["parts"] = [{"start": times[0], "end": times[8], "end_excluded": True, "read_to": read_to}]

    in_unfinished_part, in_finished_part = copy.deepcopy(naip[5]), copy.deepcopy(naip[12])
    for number, item in enumerate((in_unfinished_part, in_finished_part)):
        item["properties"].update(gsd=97.0, updated=f"2025-01-01T00:00:0{number}Z")
        replace_item(pgstac_server.url, collection_id, item)
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id]))

    assert rows_loaded(duckdb_pipeline) == 5 + 1, "the unfinished part's 5 items left to read, and one late arrival"
    assert query(duckdb_pipeline, "SELECT id FROM {items} WHERE gsd = 97 ORDER BY id") == sorted(
        [(in_unfinished_part["id"],), (in_finished_part["id"],)]
    )
    assert items_state(duckdb_pipeline)[collection_id] == {
        "value": times[-1],
        "ids": [naip[-1]["id"]],
        "late": {"value": "2025-01-01T00:00:01Z", "ids": [in_finished_part["id"]]},
    }


def test_a_run_with_nothing_new_reads_one_page_where_all_items_share_one_datetime(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    joplin = list(sample_catalog.files_of("joplin").items())  # 30 items, one datetime
    collection_id = collection_of(pgstac_server, sample_catalog, "joplin", with_updated(joplin))
    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        for collection in (collection_id, "joplin"):
            duckdb_pipeline.run(stac(url=proxy.url, collections=[collection], page_size=7))
            assert rows_loaded(duckdb_pipeline) == 30
        searches = {}
        for collection in (collection_id, "joplin"):
            faults.requests.clear()
            duckdb_pipeline.run(stac(url=proxy.url, collections=[collection], page_size=7))
            assert rows_loaded(duckdb_pipeline) == 0
            searches[collection] = sum(1 for method, path in faults.requests if (method, path) == ("POST", "/search"))

    assert items_state(duckdb_pipeline)[collection_id]["field"] == "updated"
    assert "field" not in items_state(duckdb_pipeline)["joplin"]
    # after the probes of the API's sort and filters, by `updated`, one probe finds the one item at the cursor, one
    # page; by `datetime`, two probes find the 30 items at the cursor's datetime (one span, no cut), one page, which
    # leaves out the 30 loaded at it, and one page of its late arrivals (`reading/late_arrivals.py`), empty
    probes = SORT_PROBE + FILTER_PROBE
    assert searches == {collection_id: probes + 1 + 1, "joplin": probes + 2 + 1 + 1}


def test_collections_without_updated_on_every_item_load_by_datetime(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())[:20]
    partly = with_updated(naip[:6]) + naip[6:10]
    collection_id = collection_of(pgstac_server, sample_catalog, "naip", partly)
    every_item = collection_of(pgstac_server, sample_catalog, "naip", with_updated(naip[10:]))

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id, "joplin", every_item]))

    assert rows_loaded(duckdb_pipeline) == 50
    assert {key: checkpoint.get("field") for key, checkpoint in items_state(duckdb_pipeline).items()} == {
        collection_id: None,
        "joplin": None,
        every_item: "updated",
    }


def test_an_api_that_cannot_filter_on_updated_loads_by_datetime(
    tmp_path: Path, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    folder = tmp_path / "catalog"
    (folder / "naip").mkdir(parents=True)
    (folder / "naip" / "collection.json").write_text(sample_catalog.files_of("naip").collection_json.read_text())
    items = with_updated(list(sample_catalog.files_of("naip").items())[:12])
    (folder / "naip" / "items.ndjson").write_text("".join(json_line(item) for item in items))
    server = RustacServer(tmp_path / "rustac", CatalogFolder(folder))
    (tmp_path / "rustac").mkdir()
    server.start()
    try:
        duckdb_pipeline.run(stac(url=server.url, collections=["naip"]))
    finally:
        server.stop()

    assert rows_loaded(duckdb_pipeline) == 12
    assert items_state(duckdb_pipeline)["naip"]["value"] == max(item["properties"]["datetime"] for item in items)
    assert "field" not in items_state(duckdb_pipeline)["naip"]


def json_line(item: dict[str, Any]) -> str:
    return json.dumps(item) + "\n"


@pytest.mark.parametrize(("search_method", "groups"), [("POST", 2), ("GET", 3)])
def test_a_run_over_many_collections_asks_about_them_together(
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    search_method: str,
    groups: int,
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    prefix = f"many{uuid.uuid4().hex[:6]}-"
    for number in range(30):  # two searches' worth by POST, three by GET (`COLLECTIONS_PER_SEARCH`)
        template = sample_catalog.files_of("naip").collection()
        new_collection(pgstac_server.url, template, f"{prefix}{number:02d}", naip[3 * number : 3 * number + 3])
    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        duckdb_pipeline.run(stac(url=proxy.url, collection_prefix=prefix, search_method=search_method))
        assert rows_loaded(duckdb_pipeline) == 90
        first_load = searches_sent(faults, search_method)
        collections = {f"{prefix}{number:02d}": naip[3 * number : 3 * number + 3] for number in range(30)}
        assert loaded_ids(duckdb_pipeline) == {
            key: {item["id"] for item in items} for key, items in collections.items()
        }
        assert {key: checkpoint["value"] for key, checkpoint in items_state(duckdb_pipeline).items()} == {
            key: max(item["properties"]["datetime"] for item in items) for key, items in collections.items()
        }

        faults.requests.clear()
        duckdb_pipeline.run(stac(url=proxy.url, collection_prefix=prefix, search_method=search_method))
        nothing_new = searches_sent(faults, search_method)
        late = copy.deepcopy(naip[40])
        late["properties"]["datetime"] = "2025-06-01T00:00:00Z"
        add_items(pgstac_server.url, f"{prefix}27", [late])
        faults.requests.clear()
        duckdb_pipeline.run(stac(url=proxy.url, collection_prefix=prefix, search_method=search_method))
        one_new = searches_sent(faults, search_method)

    assert rows_loaded(duckdb_pipeline) == 1
    assert loaded_ids(duckdb_pipeline)[f"{prefix}27"] == {item["id"] for item in naip[81:84]} | {late["id"]}
    # after the probes of the API's sort and filters, searches of 25 and 5 collections (10 each by GET) ask which
    # lack `updated`, then which hold items and how many: 3 each, a page's worth, so no collection is probed for
    # cuts, and one search reads each group of them. Later runs also ask each group for late arrivals.
    probes = SORT_PROBE + FILTER_PROBE
    assert len(first_load) == probes + groups + groups + groups
    assert len(nothing_new) == probes + groups + groups, "a search asks about each group, one about its late arrivals"
    assert len(one_new) == probes + groups + 1 + groups, "then the page of the collection with something new, counted"
    assert max(len(path) for _, path in first_load + nothing_new + one_new) < 8192, "nginx's request line limit"
