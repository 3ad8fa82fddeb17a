"""Items into DuckDB and Postgres: exact ids per collection, types, and incremental runs on datetime."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import dlt
import pytest
import requests

from dlt_stac import stac
from dlt_stac.auth.authorizers import Anonymous
from dlt_stac.planning import item_cursor
from dlt_stac.planning.checkpoints import Part
from dlt_stac.planning.cursor_fields import DATETIME
from dlt_stac.planning.windows import Cursor, Window, WindowFilter
from dlt_stac.reading.probes import cut_windows
from dlt_stac.reading.reading import PackageLimits, items_reading
from dlt_stac.reading.settings import window_settings
from dlt_stac.runs import committed_state, run_in_packages
from dlt_stac.server.api import StacApi
from dlt_stac.server.stac_io import stac_api_io
from dlt_stac.tables.rows import item_row
from dlt_stac.timestamps import parse_timestamp
from stack import CatalogFolder, PgstacServer, RustacServer
from stack.recording_api import RecordingApi
from tests.stac_helpers import (
    SOUTH_ALABAMA_BOX,
    add_items,
    column_types,
    create_collection,
    image_hrefs,
    items_state,
    loaded_ids,
    naip_in_box,
    overlapping,
    query,
    replace_collection,
    resource_state,
    rows_loaded,
)

SAMPLE_TABLES = {"collections", "items"}


def new_collection(server: PgstacServer, catalog: CatalogFolder, template_id: str) -> str:
    """A collection of its own for a test that writes, so that other tests' counts stay exact."""
    collection_id = f"{template_id}-{uuid.uuid4().hex[:8]}"
    create_collection(server.url, catalog.files_of(template_id).collection(), collection_id)
    return collection_id


@pytest.mark.parametrize("server_fixture", ["pgstac_server", "rustac_server"])
def test_full_load_has_every_sample_item_once(
    server_fixture: str, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline, request: pytest.FixtureRequest
) -> None:
    server: PgstacServer | RustacServer = request.getfixturevalue(server_fixture)
    expected = sample_catalog.item_ids_by_collection()

    duckdb_pipeline.run(stac(url=server.url, collections=sorted(expected), page_size=100))

    assert loaded_ids(duckdb_pipeline) == expected
    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT (collection, id)) FROM {items}") == [(1074, 1074)]
    assert rows_loaded(duckdb_pipeline) == 1074, "the merge hides an item read twice; the load counts it"
    assert set(duckdb_pipeline.default_schema.data_table_names()) == SAMPLE_TABLES
    assert sorted(row[0] for row in query(duckdb_pipeline, "SELECT id FROM {collections}")) == sorted(expected)


def test_item_columns_follow_stac_geoparquet(rustac_server: RustacServer, duckdb_pipeline: dlt.Pipeline) -> None:
    duckdb_pipeline.run(stac(url=rustac_server.url))

    types = column_types(duckdb_pipeline, "items")
    assert list(types)[:4] == ["id", "collection", "geometry", "bbox"]
    for column in ("datetime", "start_datetime", "end_datetime", "created", "updated"):
        assert types[column] == "TIMESTAMP WITH TIME ZONE", column
    for column in ("geometry", "bbox", "assets", "links", "stac_extensions", "proj_bbox"):
        assert types[column] == "JSON", column
    assert types["eo_cloud_cover"] == "DOUBLE"
    assert types["id"] == types["collection"] == "VARCHAR"
    # range items load with a null datetime and their start and end
    assert query(
        duckdb_pipeline,
        "SELECT COUNT(*), COUNT(datetime), COUNT(start_datetime), COUNT(end_datetime)"
        " FROM {items} WHERE collection = '3dep-lidar-copc'",
    ) == [(4, 0, 4, 4)]


def test_geometry_is_kept_losslessly(
    rustac_server: RustacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    duckdb_pipeline.run(stac(url=rustac_server.url, collections=["cop-dem-glo-30"]))

    assert rows_loaded(duckdb_pipeline) == len(list(sample_catalog.files_of("cop-dem-glo-30").items()))
    loaded = {
        item_id: json.loads(geometry)
        for item_id, geometry in query(duckdb_pipeline, "SELECT id, geometry FROM {items}")
    }
    assert loaded == {item["id"]: item["geometry"] for item in sample_catalog.files_of("cop-dem-glo-30").items()}


def test_asset_hrefs_by_key_with_one_query(
    rustac_server: RustacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    duckdb_pipeline.run(stac(url=rustac_server.url, collections=["naip"]))

    assert rows_loaded(duckdb_pipeline) == 1000
    assert image_hrefs(duckdb_pipeline) == {
        item["id"]: item["assets"]["image"]["href"] for item in sample_catalog.files_of("naip").items()
    }
    in_box = overlapping(sample_catalog.files_of("naip").items(), *SOUTH_ALABAMA_BOX)
    assert 0 < len(in_box) < 1000 and naip_in_box(duckdb_pipeline, *SOUTH_ALABAMA_BOX) == in_box


def test_postgres_destination_loads_the_same(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, postgres_pipeline: dlt.Pipeline
) -> None:
    expected = sample_catalog.item_ids_by_collection()

    postgres_pipeline.run(stac(url=pgstac_server.url, collections=sorted(expected)))

    assert loaded_ids(postgres_pipeline) == expected
    assert query(postgres_pipeline, "SELECT COUNT(*) FROM {items}") == [(1074,)]
    assert rows_loaded(postgres_pipeline) == 1074
    types = column_types(postgres_pipeline, "items")
    assert list(types)[:4] == ["id", "collection", "geometry", "bbox"]
    assert types["datetime"] == "timestamp with time zone"
    assert types["assets"] == "jsonb"
    assert image_hrefs(postgres_pipeline) == {
        item["id"]: item["assets"]["image"]["href"] for item in sample_catalog.files_of("naip").items()
    }
    assert types["bbox_west"] == "double precision"
    in_box = overlapping(sample_catalog.files_of("naip").items(), *SOUTH_ALABAMA_BOX)
    assert naip_in_box(postgres_pipeline, *SOUTH_ALABAMA_BOX) == in_box


def test_second_run_loads_nothing_then_exactly_the_inserted_items(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    collection_id = new_collection(pgstac_server, sample_catalog, "naip")
    naip = list(sample_catalog.files_of("naip").items())
    add_items(pgstac_server.url, collection_id, naip[:50])

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=7))
    assert rows_loaded(duckdb_pipeline) == 50

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=7))
    assert rows_loaded(duckdb_pipeline) == 0

    assert max(item["properties"]["datetime"] for item in naip[:50]) < "2024"
    late = [copy.deepcopy(item) for item in naip[50:53]]
    for number, item in enumerate(late):
        item["properties"]["datetime"] = f"2024-06-0{number + 1}T00:00:00Z"
        item["id"] = f"inserted-{number}"
    add_items(pgstac_server.url, collection_id, late)

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=7))
    assert rows_loaded(duckdb_pipeline) == 3
    assert loaded_ids(duckdb_pipeline) == {
        collection_id: {item["id"] for item in naip[:50]} | {"inserted-0", "inserted-1", "inserted-2"}
    }
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(53,)]
    assert items_state(duckdb_pipeline)[collection_id] == {"value": "2024-06-03T00:00:00Z", "ids": ["inserted-2"]}


def test_a_collection_loads_again_only_when_it_changed(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    edited, kept = (new_collection(pgstac_server, sample_catalog, "joplin") for _ in range(2))
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[edited, kept]))
    assert rows_loaded(duckdb_pipeline, "collections") == 2

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[edited, kept]))
    assert rows_loaded(duckdb_pipeline, "collections") == 0

    document = requests.get(f"{pgstac_server.url}/collections/{edited}", timeout=30).json()
    replace_collection(pgstac_server.url, {**document, "description": "edited", "links": []})
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[edited, kept]))
    assert rows_loaded(duckdb_pipeline, "collections") == 1
    assert query(duckdb_pipeline, "SELECT id, description FROM {collections} ORDER BY id") == sorted(
        [(edited, "edited"), (kept, sample_catalog.files_of("joplin").collection()["description"])]
    )


def test_items_sharing_the_cursor_across_page_boundaries_load_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    joplin = sample_catalog.item_ids_by_collection()["joplin"]

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["joplin"], page_size=7))

    assert rows_loaded(duckdb_pipeline) == 30
    assert loaded_ids(duckdb_pipeline) == {"joplin": joplin}
    assert items_state(duckdb_pipeline)["joplin"] == {"value": "2000-02-02T00:00:00Z", "ids": sorted(joplin)}
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["joplin"], page_size=7))
    assert rows_loaded(duckdb_pipeline) == 0


def test_range_items_without_datetime_load_and_move_their_cursor(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    range_collections = ["3dep-lidar-copc", "3dep-lidar-dsm", "io-lulc-annual-v02"]

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=range_collections))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {collection: expected[collection] for collection in range_collections}
    latest_start = max(
        item["properties"]["start_datetime"] for item in sample_catalog.files_of("io-lulc-annual-v02").items()
    )
    assert items_state(duckdb_pipeline)["io-lulc-annual-v02"]["value"] == latest_start
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=range_collections))
    assert rows_loaded(duckdb_pipeline) == 0


def test_each_collection_has_its_own_cursor(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    since_2020 = {item["id"] for item in naip if item["properties"]["datetime"] >= "2020"}
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["naip"], since="2020-01-01T00:00:00Z"))
    assert rows_loaded(duckdb_pipeline) == len(since_2020)
    naip_cursor = items_state(duckdb_pipeline)["naip"]
    assert naip_cursor["value"] == max(item["properties"]["datetime"] for item in naip)

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["naip", "joplin"], since="1990-01-01T00:00:00Z"))

    assert rows_loaded(duckdb_pipeline) == 30  # joplin (2000) from its own initial value, nothing more of naip
    assert loaded_ids(duckdb_pipeline) == {
        "naip": since_2020,
        "joplin": sample_catalog.item_ids_by_collection()["joplin"],
    }
    assert items_state(duckdb_pipeline)["naip"] == naip_cursor
    assert set(items_state(duckdb_pipeline)) == {"naip", "joplin"}


def test_since_and_until_bound_the_window_and_until_leaves_the_cursor(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    in_2015 = {item["id"] for item in naip if item["properties"]["datetime"].startswith("2015")}

    duckdb_pipeline.run(
        stac(url=pgstac_server.url, collections=["naip"], since="2015-01-01T00:00:00Z", until="2015-12-31T23:59:59Z")
    )

    assert in_2015 and loaded_ids(duckdb_pipeline) == {"naip": in_2015}
    assert resource_state(duckdb_pipeline) == {}


def test_lag_re_reads_behind_the_cursor(pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline) -> None:
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["landsat-c2-l2"]))

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["landsat-c2-l2"], lag=3600))

    assert rows_loaded(duckdb_pipeline) == 4  # all four lie within the hour before the cursor; merged, not duplicated
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(4,)]


def test_an_external_schedulers_interval_is_a_stateless_window_when_allowed(
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLT_INTERVAL_START", "2019-01-01T00:00:00Z")
    monkeypatch.setenv("DLT_INTERVAL_END", "2020-01-01T00:00:00Z")
    naip = list(sample_catalog.files_of("naip").items())
    in_2019 = {item["id"] for item in naip if item["properties"]["datetime"].startswith("2019")}

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["naip"], allow_external_schedulers=True))
    assert in_2019 and loaded_ids(duckdb_pipeline) == {"naip": in_2019}
    assert resource_state(duckdb_pipeline) == {}

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=["naip"]))  # not allowed: the whole history
    assert rows_loaded(duckdb_pipeline) == 1000
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1000,)]


def at_seconds(item: dict[str, Any], item_id: str, seconds: int) -> dict[str, Any]:
    """A copy of `item` with a new id and its datetime `seconds` after 2021-01-01T00:00:00Z."""
    copied = copy.deepcopy(item)
    copied["id"] = item_id
    copied["properties"]["datetime"] = f"2021-01-01T00:00:{seconds:02d}Z"
    return copied


def test_concurrent_streams_cut_a_collection_and_load_the_items_at_a_cut_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    collection_id = new_collection(pgstac_server, sample_catalog, "naip")
    naip = next(iter(sample_catalog.files_of("naip").items()))
    at_cut = [at_seconds(naip, f"at-cut-{number}", 10) for number in range(5)]
    spanning = at_seconds(naip, "spanning-the-cut", 0)
    spanning["properties"].update(
        {"datetime": None, "start_datetime": "2021-01-01T00:00:05Z", "end_datetime": "2021-01-01T00:00:15Z"}
    )
    items = [at_seconds(naip, "first", 0), spanning, *at_cut, at_seconds(naip, "last", 20)]
    add_items(pgstac_server.url, collection_id, items)
    api = StacApi.open(pgstac_server.url, stac_api_io(pgstac_server.url, Anonymous(), 0, 0, 30))
    everything = Window(None, parse_timestamp("2030-01-01T00:00:00Z"), stateless=False, end_excluded=True)

    [(parts, matched)] = cut_windows(api, [(collection_id, DATETIME, everything)], page_size=2, concurrency=2)

    assert matched == 8, "the probe's numberMatched, for a progress display"
    cut = parse_timestamp("2021-01-01T00:00:10Z")
    assert [(part.start, part.end, part.end_excluded) for part in parts] == [
        (None, cut, True),
        (cut, everything.end, True),
    ]
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=2, concurrency=2))
    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT id) FROM {items}") == [(8, 8)]
    assert rows_loaded(duckdb_pipeline) == 8, "an item at the cut or spanning it was admitted by both parts"
    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in items}}
    assert items_state(duckdb_pipeline)[collection_id] == {"value": "2021-01-01T00:00:20Z", "ids": ["last"]}
    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=2, concurrency=2))
    assert rows_loaded(duckdb_pipeline) == 0


def test_an_item_with_both_datetime_and_a_range_loads_once_where_a_cut_falls_between_them(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    """pgstac orders and compares such an item by its `start_datetime`, the cursor by its `datetime`: the part
    that holds the `datetime` must still find it (a CQL2 filter on `datetime` lost it, where STAC's `datetime`
    parameter matches its overlap)."""
    collection_id = new_collection(pgstac_server, sample_catalog, "naip")
    naip = next(iter(sample_catalog.files_of("naip").items()))
    both = at_seconds(naip, "datetime-after-the-cut-start-before-it", 12)
    both["properties"].update(start_datetime="2021-01-01T00:00:05Z", end_datetime="2021-01-01T00:00:15Z")
    items = [at_seconds(naip, "first", 0), both, *(at_seconds(naip, f"at-{n}", 10) for n in range(5))]
    add_items(pgstac_server.url, collection_id, [*items, at_seconds(naip, "last", 20)])

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=2, concurrency=2))

    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in items} | {"last"}}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(8,)]


def test_concurrency_loads_what_one_stream_loads(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    expected = sample_catalog.item_ids_by_collection()
    one_stream = dlt.pipeline(
        pipeline_name=f"{duckdb_pipeline.pipeline_name}_one",
        pipelines_dir=duckdb_pipeline.pipelines_dir,
        destination=dlt.destinations.duckdb(f"{duckdb_pipeline.pipelines_dir}/one_stream.duckdb"),
        dataset_name="stac",
    )

    for pipeline, concurrency in ((duckdb_pipeline, 4), (one_stream, 1)):
        source = stac(url=pgstac_server.url, collections=sorted(expected), page_size=40, concurrency=concurrency)
        pipeline.run(source.with_resources("items"))

    assert loaded_ids(duckdb_pipeline) == loaded_ids(one_stream) == expected
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1074,)]
    assert rows_loaded(duckdb_pipeline) == rows_loaded(one_stream) == 1074
    assert items_state(duckdb_pipeline) == items_state(one_stream)


def test_an_item_the_server_returns_twice_loads_once(duckdb_pipeline: dlt.Pipeline) -> None:
    api = RecordingApi()
    item = {"type": "Feature", "stac_version": "1.0.0", "collection": "twice", "geometry": None, "links": []}
    features = [
        {**item, "id": name, "properties": {"datetime": f"2021-01-0{day}T00:00:00Z"}}
        for day, name in enumerate("abc", start=1)
    ]
    api.documents = {
        "/": {
            "type": "Catalog",
            "id": "offset-paging",
            "description": "pages whose offsets shift",
            "stac_version": "1.0.0",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
            "links": [{"rel": "search", "href": f"{api.url}/search", "method": "POST"}],
        },
        "/collections": {"collections": [{"type": "Collection", "id": "twice", "links": []}], "links": []},
        "/search": {"features": features[:2], "links": [{"rel": "next", "href": f"{api.url}/search?page=2"}]},
        "/search?page=2": {"features": features[1:], "links": []},
    }
    api.start()
    try:
        duckdb_pipeline.run(stac(url=api.url).with_resources("items"))
    finally:
        api.stop()

    assert query(duckdb_pipeline, "SELECT id FROM {items} ORDER BY id") == [("a",), ("b",), ("c",)]


def test_an_item_of_a_collection_a_bundle_did_not_ask_for_is_rejected(duckdb_pipeline: dlt.Pipeline) -> None:
    api = RecordingApi()
    item = {"type": "Feature", "stac_version": "1.0.0", "geometry": None, "links": []}
    properties = {"datetime": "2021-01-01T00:00:00Z"}
    features = [
        {**item, "id": f"{collection}-1", "collection": collection, "properties": properties} for collection in "abz"
    ]
    api.documents = {
        "/": {
            "type": "Catalog",
            "id": "foreign-items",
            "description": "a search that answers with an item of a collection it was not asked for",
            "stac_version": "1.0.0",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
                "https://api.stacspec.org/v1.0.0/item-search#filter",
            ],
            "links": [{"rel": "search", "href": f"{api.url}/search", "method": "POST"}],
        },
        "/collections": {"collections": [{"type": "Collection", "id": c, "links": []} for c in "ab"], "links": []},
        "/search": {"features": features, "links": []},
    }
    api.start()
    try:
        duckdb_pipeline.run(stac(url=api.url).with_resources("items"))
    finally:
        api.stop()

    searches = [body for body in api.posted if body.get("limit") != 1]  # `limit=1`: a probe (the run's page is 250)
    assert {tuple(body["collections"]) for body in searches} == {("a", "b")}, "a and b are read in one bundle"

    assert query(duckdb_pipeline, "SELECT collection, id FROM {items} ORDER BY id") == [("a", "a-1"), ("b", "b-1")]
    assert query(duckdb_pipeline, "SELECT item_id, reason FROM {rejected_items}") == [
        ("z-1", "a search for collections ['a', 'b'] returned an item of 'z'")
    ]
    assert items_state(duckdb_pipeline) == {
        "a": {"value": "2021-01-01T00:00:00Z", "ids": ["a-1"]},
        "b": {"value": "2021-01-01T00:00:00Z", "ids": ["b-1"]},
    }


def test_the_parts_of_a_cut_window_admit_an_item_at_a_cut_in_the_later_part_only() -> None:
    cut, end = parse_timestamp("2021-01-01T00:00:10Z"), parse_timestamp("2021-01-01T00:00:20Z")
    parts = [WindowFilter(part) for part in Window(None, end, stateless=False).split([cut])]

    assert [part.admits(cut - timedelta(microseconds=1), "a") for part in parts] == [True, False]
    assert [part.admits(cut, "a") for part in parts] == [False, True]
    assert [part.admits(end, "a") for part in parts] == [False, True]


def test_each_package_commits_the_cursors_and_read_to_of_exactly_what_it_loaded(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    """1000 naip items, two parts (cut by the probes), pages of up to 100, packages of at least 250 rows: four
    packages, each but the last ended by the page that reached 250. After each, the state (on disk and as the
    destination committed it) holds each part's `read_to` at the highest item of the part loaded so far, with
    nothing of the part below it missing."""
    api_items = {row["id"]: item_cursor(row) for row in map(item_row, sample_catalog.files_of("naip").items())}
    source = stac(url=pgstac_server.url, collections=["naip"], page_size=100, package_size=250).with_resources("items")
    packages = []
    while True:
        duckdb_pipeline.run(source)
        loaded = {item_id for (item_id,) in query(duckdb_pipeline, "SELECT id FROM {items}")}
        checkpoint = items_state(duckdb_pipeline)["naip"]
        packages.append(rows_loaded(duckdb_pipeline))
        assert committed_state(duckdb_pipeline)["sources"]["stac"] == duckdb_pipeline.state["sources"]["stac"]
        assert Cursor.from_state(checkpoint) == highest_of({item_id: api_items[item_id] for item_id in loaded})
        for part in checkpoint.get("parts", []):
            window = Part.from_state(part, stateless=False).window
            in_part = {item_id: value for item_id, value in api_items.items() if window_filter_admits(window, value)}
            read_to = Cursor.from_state(part["read_to"])
            assert read_to == highest_of({item_id: in_part[item_id] for item_id in loaded & set(in_part)})
            below = {item_id for item_id, value in in_part.items() if read_to.value and value < read_to.value}
            assert below <= loaded
        if "parts" not in checkpoint:
            break

    assert len(packages) == 4 and sum(packages) == 1000
    assert all(250 <= rows < 350 for rows in packages[:-1]), packages
    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT id) FROM {items}") == [(1000, 1000)]
    assert Cursor.from_state(items_state(duckdb_pipeline)["naip"]) == highest_of(api_items)


def highest_of(cursors: dict[str, datetime]) -> Cursor:
    cursor = Cursor()
    for item_id, value in cursors.items():
        cursor.advance(value, item_id)
    return cursor


def window_filter_admits(window: Window, value: datetime) -> bool:
    return WindowFilter(window).admits(value, "")


def test_a_backfill_in_packages_goes_on_where_it_stopped_and_leaves_the_cursors_alone(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    before_2020 = {item["id"] for item in naip if item["properties"]["datetime"] < "2020"}
    until = "2019-12-31T23:59:59Z"

    def backfill(until: str) -> Any:
        return stac(url=pgstac_server.url, collections=["naip"], until=until, page_size=100, package_size=150)

    duckdb_pipeline.run(backfill(until).with_resources("items"))  # one package, as a run killed after it leaves
    first = {item_id for (item_id,) in query(duckdb_pipeline, "SELECT id FROM {items}")}
    saved = resource_state(duckdb_pipeline)["backfill"]
    assert saved["window"] == f"../{until}" and set(saved["parts"]) == {"naip"}
    assert 150 <= len(first) < 250

    loaded = [len(first)]
    while "backfill" in resource_state(duckdb_pipeline):  # runs of the same backfill go on from there
        duckdb_pipeline.run(backfill(until).with_resources("items"))
        loaded.append(rows_loaded(duckdb_pipeline))

    assert sum(loaded) == len(before_2020) and max(loaded) < 250  # nothing read twice
    assert loaded_ids(duckdb_pipeline) == {"naip": before_2020}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(len(before_2020),)]
    assert resource_state(duckdb_pipeline) == {}


def test_a_package_also_ends_at_package_megabytes(pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline) -> None:
    """Packages of any number of items but at most a millionth of a megabyte: each page is a package of its own."""
    source = stac(url=pgstac_server.url, collections=["naip"], page_size=100, concurrency=1, package_megabytes=1e-6)

    report = run_in_packages(duckdb_pipeline, source.with_resources("items"))

    assert [package.rows["items"] for package in report.packages] == [100] * 10
    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT id) FROM {items}") == [(1000, 1000)]


def test_a_checkpoint_whose_parts_are_read_and_found_empty_is_dropped(pgstac_server: PgstacServer) -> None:
    """Parts left by an interrupted run over a range that holds no item (deleted since, say), for a collection
    with no cursor yet: once read, the collection has nothing to save, and its old parts must not stay."""
    api = StacApi.open(pgstac_server.url, stac_api_io(pgstac_server.url, Anonymous(), 0, 0, 30))
    empty_part = {"start": "2099-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z", "end_excluded": True, "read_to": None}
    state: dict[str, Any] = {"cursors": {"joplin": {"parts": [empty_part]}}}
    reading = items_reading(api, ["joplin"], state, window_settings(None, None, 0, False), 100, 2)

    assert list(reading.next_package(PackageLimits(1000, 100))) == []
    reading.save_checkpoint(state)

    assert state == {"cursors": {}}


def test_pipeline_run_loads_one_package_and_says_how_much_is_left_and_what_loads_it_all(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="dlt")
    monkeypatch.setattr(logging.getLogger("dlt"), "handlers", [caplog.handler])  # dlt's logger does not propagate
    source = stac(url=pgstac_server.url, collections=["naip"], page_size=100, package_size=250).with_resources("items")

    duckdb_pipeline.run(source)

    loaded = rows_loaded(duckdb_pipeline)
    warnings = [record.getMessage() for record in caplog.records if record.getMessage().startswith("stac: ")]
    assert warnings == [
        f"stac: `items` loaded {loaded:,} items in 1 load package(s), and about {1000 - loaded:,} of 1,000 items are "
        "left to read: pipeline.run(source) loads one package per resource. Load them all with "
        "run_in_packages(pipeline, source) (from dlt_stac import run_in_packages), or run the pipeline again for the "
        "next package."
    ]
    caplog.clear()
    report = run_in_packages(duckdb_pipeline, source)
    assert sum(report.rows().values()) >= 1000 - loaded
    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT id) FROM {items}") == [(1000, 1000)]
    assert not [record for record in caplog.records if record.getMessage().startswith("stac: ")]
