"""Servers that do not do what most do: sorts they refuse though they declare Sort, searches by GET only."""

from __future__ import annotations

import logging

import dlt
import pytest
from pystac_client import Client

from dlt_stac import stac
from dlt_stac.errors import BadPage, InvalidSearch
from dlt_stac.runs import run_in_packages
from stack import CatalogFolder, PgstacServer
from stack.fault_proxy import FaultProxy, Faults
from stack.recording_api import RecordingApi
from tests.stac_helpers import items_state, loaded_ids, query
from tests.test_search import SOUTH_ALABAMA, server_answer

COLLECTIONS = ["naip", "joplin", "3dep-lidar-dsm"]


@pytest.fixture()
def dlt_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="dlt")
    monkeypatch.setattr(logging.getLogger("dlt"), "handlers", [caplog.handler])  # dlt's logger does not propagate
    return caplog


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_server_that_refuses_properties_sorts_is_sorted_by_the_bare_names(
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    dlt_log: pytest.LogCaptureFixture,
    concurrency: int,
) -> None:
    """stac-fastapi-geoparquet 0.0.7 declares Sort, answers 500 to `properties.datetime` and sorts on `datetime`."""
    faults = Faults(refused_sort_fields=r"^properties\.")
    with FaultProxy(pgstac_server.url, faults) as proxy:
        source = stac(url=proxy.url, collections=COLLECTIONS, page_size=100, concurrency=concurrency)
        run_in_packages(duckdb_pipeline, source)
        assert faults.sorts_refused == 1, "the probe only: every search after it sorts by bare names"
        cursors = items_state(duckdb_pipeline)

        report = run_in_packages(duckdb_pipeline, stac(url=proxy.url, collections=COLLECTIONS, page_size=100))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {collection: expected[collection] for collection in COLLECTIONS}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1034,)], "each item once"
    assert report.rows() == {}, "the run after it loads nothing"
    assert items_state(duckdb_pipeline) == cursors
    assert "sorts by `datetime` but not by `properties.datetime`" in dlt_log.text
    assert "refuses sorted searches" not in dlt_log.text


def test_a_server_that_refuses_every_sort_is_read_in_its_own_order_with_a_warning(
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    dlt_log: pytest.LogCaptureFixture,
) -> None:
    faults = Faults(refused_sort_fields=".")
    searches = {"dsm": {"collections": ["3dep-lidar-dsm"], "sortby": ["-properties.datetime"]}}
    with FaultProxy(pgstac_server.url, faults) as proxy:
        options = {"url": proxy.url, "collections": COLLECTIONS, "page_size": 100, "package_size": 300}
        run_in_packages(duckdb_pipeline, stac(**options, searches=searches))
        assert faults.sorts_refused == 2, "both probes; no search after them is sorted"
        cursors = items_state(duckdb_pipeline)

        report = run_in_packages(duckdb_pipeline, stac(**options))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {collection: expected[collection] for collection in COLLECTIONS}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1034,)], "each item once"
    assert loaded_ids(duckdb_pipeline, "search_dsm") == {"3dep-lidar-dsm": expected["3dep-lidar-dsm"]}
    assert report.rows() == {}, "the run after it loads nothing"
    assert items_state(duckdb_pipeline) == cursors
    assert f"The STAC API at {proxy.url} declares the Sort extension but refuses sorted searches" in dlt_log.text
    assert 'Referenced column \\"properties.datetime\\" not found' in dlt_log.text
    assert f"Search `dsm`: the STAC API at {proxy.url} does not sort, so its `sortby` is not sent" in dlt_log.text


def test_a_probe_that_gets_no_answer_fails_the_run_instead_of_changing_how_it_sorts(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    # the probe of `properties.datetime` and its one retry get no answer (the collections are read meanwhile)
    faults = Faults(every=1, kinds=("drop",), faults_at_most=2, counted_paths="/search")
    with (
        FaultProxy(pgstac_server.url, faults) as proxy,
        pytest.raises(BadPage, match=r"at .*/search: the request failed"),
    ):
        stac(url=proxy.url, collections=["joplin"], max_retries=1, backoff_factor=0.01)

    assert faults.faults_sent == 2
    assert [path for _, path in faults.requests].count("/search") == 2, "nothing else asked, by any sort"


def test_an_error_that_unsorted_searches_get_too_is_not_taken_for_a_refused_sort(duckdb_pipeline: dlt.Pipeline) -> None:
    api = RecordingApi()
    api.documents = {
        "/": {
            "type": "Catalog",
            "id": "failing-search",
            "description": "a search that fails whatever it is asked",
            "stac_version": "1.0.0",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                           "https://api.stacspec.org/v1.1.0/item-search#sort"],
            "links": [{"rel": "search", "href": f"{api.url}/search", "method": "POST"}],
        },
        "/collections": {"collections": [{"type": "Collection", "id": "c", "links": []}], "links": []},
        "/search": (500, {"code": "InternalError", "description": "the database is down"}),
    }  # fmt: skip
    api.start()
    try:
        with pytest.raises(BadPage, match=r"at .*/search: the server answered 500: .*the database is down"):
            stac(url=api.url, max_retries=1, backoff_factor=0.01)  # opening the API probes how it sorts
    finally:
        api.stop()

    assert [body.get("sortby") for body in api.posted[:3]] == [
        [{"field": "properties.datetime", "direction": "asc"}, {"field": "id", "direction": "asc"}],
        [{"field": "datetime", "direction": "asc"}, {"field": "id", "direction": "asc"}],
        None,
    ]


@pytest.mark.parametrize("post_refused", [False, True], ids=["search_method-GET", "POST-answered-405"])
def test_searches_by_get_load_what_searches_by_post_load(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline, post_refused: bool
) -> None:
    south_al = {**SOUTH_ALABAMA, "filter": "gsd = 1.0", "sortby": "-properties.datetime"}
    del south_al["filter_lang"]
    faults = Faults(post_refused_on="/search" if post_refused else None)
    with FaultProxy(pgstac_server.url, faults) as proxy:
        options = {
            "url": proxy.url,
            "collections": COLLECTIONS,
            "page_size": 100,
            "concurrency": 3,
            "search_method": "POST" if post_refused else "GET",
        }
        run_in_packages(duckdb_pipeline, stac(**options, searches={"south_al": south_al}))
        cursors = items_state(duckdb_pipeline)
        report = run_in_packages(duckdb_pipeline, stac(**options, searches={"south_al": south_al}))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {collection: expected[collection] for collection in COLLECTIONS}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1034,)], "each item once"
    assert loaded_ids(duckdb_pipeline, "search_south_al") == {"naip": server_answer(pgstac_server.url, SOUTH_ALABAMA)}
    assert report.rows() == {}, "the run after it loads nothing"
    assert items_state(duckdb_pipeline) == cursors
    searches = [(method, path) for method, path in faults.requests if path.startswith("/search")]
    assert [method for method, _ in searches].count("POST") == (2 if post_refused else 0), "one a run, answered 405"
    assert any("filter-lang=cql2-text" in path for _, path in searches)


def test_an_api_without_item_search_is_read_from_each_collections_items(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    south_al = {key: SOUTH_ALABAMA[key] for key in ("collections", "bbox", "datetime")}
    faults = Faults(features_only=True)
    with FaultProxy(pgstac_server.url, faults) as proxy:
        options = {"url": proxy.url, "collections": COLLECTIONS, "page_size": 100, "concurrency": 3}
        run_in_packages(duckdb_pipeline, stac(**options, searches={"south_al": south_al}))
        cursors = items_state(duckdb_pipeline)
        report = run_in_packages(duckdb_pipeline, stac(**options))
        with pytest.raises(
            InvalidSearch,
            match=r"Search `cheap` has invalid parameters: The STAC API at .* has no item search: it offers only "
            r"/collections/\{id\}/items, which takes one collection's datetime, bbox and limit, and not filter\.$",
        ):
            stac(**options, searches={"cheap": {"collections": ["naip"], "filter": "gsd = 1.0"}})

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {collection: expected[collection] for collection in COLLECTIONS}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1034,)], "each item once"
    assert loaded_ids(duckdb_pipeline, "search_south_al") == {
        "naip": server_answer(pgstac_server.url, {key: SOUTH_ALABAMA[key] for key in south_al})
    }
    assert report.rows() == {}, "the run after it loads nothing"
    assert items_state(duckdb_pipeline) == cursors
    item_pages = {path.partition("?")[0] for _, path in faults.requests if "/items" in path}
    assert item_pages == {f"/collections/{collection}/items" for collection in COLLECTIONS}
    assert not [path for _, path in faults.requests if path.startswith("/search")]


SERVERS = [
    ("pgstac_server", "POST"),
    ("pgstac_server", "GET"),
    ("rustac_server", "POST"),
    ("geoparquet_server", "POST"),
]
"""The compatibility matrix: each server, by each search method it pages right (rustac's GET /search answers 500
where a next link goes with `collections`, a known limit of rustac 0.9.18)."""


@pytest.mark.parametrize(("server_fixture", "search_method"), SERVERS, ids=[f"{s}-{m}" for s, m in SERVERS])
def test_every_server_loads_every_item_once_and_a_named_search_as_the_server_answers_it(
    server_fixture: str,
    search_method: str,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    request: pytest.FixtureRequest,
) -> None:
    server = request.getfixturevalue(server_fixture)
    south_al = {key: SOUTH_ALABAMA[key] for key in ("collections", "bbox", "datetime")}
    expected = {key: ids for key, ids in sample_catalog.item_ids_by_collection().items() if key != "naip"}
    collections = sorted(expected)  # naip's 1,000 items are the search's: the other 12 collections hold 74
    options = {"url": server.url, "collections": collections, "page_size": 20, "search_method": search_method}

    run_in_packages(duckdb_pipeline, stac(**options, searches={"south_al": south_al}))
    cursors = items_state(duckdb_pipeline)
    report = run_in_packages(duckdb_pipeline, stac(**options, searches={"south_al": south_al}))

    assert loaded_ids(duckdb_pipeline) == expected
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(74,)], "each item once"
    answer = Client.open(server.url).search(**south_al, method=search_method, limit=100).items_as_dicts()
    assert loaded_ids(duckdb_pipeline, "search_south_al") == {"naip": {item["id"] for item in answer}}
    assert 0 < len(loaded_ids(duckdb_pipeline, "search_south_al")["naip"]) < 1000
    assert report.rows() == {}, "the run after it loads nothing"
    assert items_state(duckdb_pipeline) == cursors


def test_named_searches_by_intersects_and_by_ids_load_by_get_what_the_server_answers(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    naip = list(sample_catalog.files_of("naip").items())
    west, south, east, north = SOUTH_ALABAMA["bbox"]
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    searches = {
        "shape": {"collections": ["naip"], "intersects": {"type": "Polygon", "coordinates": [ring]}},
        "named": {"collections": ["naip"], "ids": [item["id"] for item in naip[:7]]},
    }
    source = stac(url=pgstac_server.url, searches=searches, page_size=50, search_method="GET")
    run_in_packages(duckdb_pipeline, source.with_resources("search_shape", "search_named"))

    for name, search in searches.items():
        answer = Client.open(pgstac_server.url).search(**search, method="GET", limit=100).items_as_dicts()
        assert loaded_ids(duckdb_pipeline, f"search_{name}") == {"naip": {item["id"] for item in answer}}
    assert loaded_ids(duckdb_pipeline, "search_named") == {"naip": {item["id"] for item in naip[:7]}}
    assert 0 < len(loaded_ids(duckdb_pipeline, "search_shape")["naip"]) < 1000
