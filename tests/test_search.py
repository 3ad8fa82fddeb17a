"""Named searches load exactly what the server answers for them, each into its own table with its own cursor."""

from __future__ import annotations

import re
from typing import Any

import dlt
import pytest
from pystac_client import Client

from dlt_stac import stac
from dlt_stac.auth.authorizers import Anonymous
from dlt_stac.errors import InvalidSearch, UnknownCollections
from dlt_stac.server.api import StacApi
from dlt_stac.server.stac_io import stac_api_io
from stack import CatalogFolder, PgstacServer
from tests.stac_helpers import loaded_ids, query, rows_loaded

SOUTH_ALABAMA = {
    "collections": ["naip"],
    "bbox": [-87.5, 30.3, -86.5, 30.8],
    "datetime": "2015-01-01T00:00:00Z/2021-12-31T23:59:59Z",
    "filter": {"op": "=", "args": [{"property": "gsd"}, 1.0]},
    "filter_lang": "cql2-json",
}


def server_answer(url: str, parameters: dict[str, Any]) -> set[str]:
    return set(server_answer_in_cursor_order(url, parameters))


def server_answer_in_cursor_order(url: str, parameters: dict[str, Any]) -> list[str]:
    """The ids the server answers, by datetime and id: the order in which a search's cursor moves over them."""
    items = Client.open(url).search(**parameters, limit=100).items_as_dicts()
    return [item["id"] for item in sorted(items, key=lambda item: (item["properties"]["datetime"], item["id"]))]


def test_search_with_bbox_datetime_and_cql2_filter_loads_what_the_server_answers(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    expected = server_answer(pgstac_server.url, SOUTH_ALABAMA)
    assert 0 < len(expected) < 1000

    source = stac(url=pgstac_server.url, searches={"south_al": SOUTH_ALABAMA}, page_size=10)
    duckdb_pipeline.run(source.with_resources("search_south_al"))

    assert loaded_ids(duckdb_pipeline, "search_south_al") == {"naip": expected}
    assert rows_loaded(duckdb_pipeline, "search_south_al") == len(expected)
    assert "items" not in duckdb_pipeline.default_schema.data_table_names()
    duckdb_pipeline.run(source_again(pgstac_server, {"south_al": SOUTH_ALABAMA}))
    assert rows_loaded(duckdb_pipeline, "search_south_al") == 0


def source_again(server: PgstacServer, searches: dict[str, Any]) -> Any:
    return stac(url=server.url, searches=searches, page_size=10).with_resources(
        *(f"search_{name}" for name in searches)
    )


def test_cql2_text_search_with_max_items_and_own_table(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    search = {
        "collections": ["naip"],
        "filter": "gsd < 1",
        "filter_lang": "cql2-text",
        "max_items": 25,
        "table_name": "fine_naip",
    }
    allowed = server_answer_in_cursor_order(
        pgstac_server.url, {"collections": ["naip"], "filter": {"op": "<", "args": [{"property": "gsd"}, 1]}}
    )

    duckdb_pipeline.run(source_again(pgstac_server, {"fine": search}))

    assert loaded_ids(duckdb_pipeline, "fine_naip") == {"naip": set(allowed[:25])}
    assert rows_loaded(duckdb_pipeline, "fine_naip") == 25
    assert len(allowed) == 429

    duckdb_pipeline.run(source_again(pgstac_server, {"fine": search}))  # the next 25, from where the cursor stopped
    assert rows_loaded(duckdb_pipeline, "fine_naip") == 25
    assert loaded_ids(duckdb_pipeline, "fine_naip") == {"naip": set(allowed[:50])}


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"bbox": [1, 2, 3]}, "Search `bad` has invalid parameters: bbox needs 4 or 6 numbers, got 3: [1, 2, 3]"),
        (
            {"datetime": "yesterday"},
            "Search `bad` has invalid parameters: Exception: invalid datetime component: yesterday",
        ),
        (
            {"colections": ["naip"]},
            "Search `bad` has invalid parameters: unknown keys ['colections']; known keys: ['bbox', 'collections', "
            "'datetime', 'fields', 'filter', 'filter_lang', 'ids', 'intersects', 'limit', 'max_items', 'query', "
            "'sortby', 'table_name']",
        ),
        ({"filter": "gsd <<< 1"}, "Search `bad` has invalid parameters: filter is not valid CQL2 text: 'gsd <<< 1'"),
        (
            {"table_name": "items"},
            "Search `bad` has invalid parameters: table_name 'items' is a table of the source itself; pick another one",
        ),
    ],
)
def test_malformed_search_parameters_are_named(
    pgstac_server: PgstacServer, search: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSearch) as raised:
        stac(url=pgstac_server.url, searches={"bad": search})
    assert str(raised.value).split("\n")[0] == message


def test_search_on_an_unknown_collection_names_the_existing_ones(pgstac_server: PgstacServer) -> None:
    known = rf"^Unknown collection\(s\) nope at {re.escape(pgstac_server.url)}\. The API has: 3dep-lidar-copc, 3dep-"
    with pytest.raises(UnknownCollections, match=known):
        stac(url=pgstac_server.url, searches={"s": {"collections": ["nope"]}})


def test_collection_prefix_selects_collections(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    duckdb_pipeline.run(stac(url=pgstac_server.url, collection_prefix="3dep-"))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {name: expected[name] for name in ("3dep-lidar-copc", "3dep-lidar-dsm")}
    assert rows_loaded(duckdb_pipeline) == 8
    assert rows_loaded(duckdb_pipeline, "collections") == 2


def test_queryables_and_conformance_load_when_selected(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    source = stac(url=pgstac_server.url, collections=["joplin"])
    assert {name for name, resource in source.resources.items() if not resource.selected} == {
        "queryables",
        "conformance",
    }

    duckdb_pipeline.run(source.with_resources("queryables", "conformance"))

    client = Client.open(pgstac_server.url)
    uris = sorted(uri for (uri,) in query(duckdb_pipeline, "SELECT uri FROM {conformance}"))
    assert uris == sorted(client.get_conforms_to())
    queryables = query(duckdb_pipeline, "SELECT name, type FROM {queryables}")
    served = client.get_queryables()["properties"]
    assert sorted(queryables) == sorted((name, schema.get("type")) for name, schema in served.items())
    assert dict(queryables)["datetime"] == "string"


def test_item_pages_are_asked_for_in_datetime_then_id_order_where_the_api_sorts(pgstac_server: PgstacServer) -> None:
    api = StacApi.open(pgstac_server.url, stac_api_io(pgstac_server.url, Anonymous(), 0, 0, 10))
    search = api.search(collections=["naip"], limit=50)

    assert search.get_parameters()["sortby"] == [
        {"field": "properties.datetime", "direction": "asc"},
        {"field": "id", "direction": "asc"},
    ]
    first_page = next(api.search_pages(search)).entries
    keys = [(item["properties"]["datetime"], item["id"]) for item in first_page]
    assert len(keys) == 50 and keys == sorted(keys)


def test_two_searches_into_one_table_load_each_item_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    both = {"collections": ["joplin"], "table_name": "joplin_twice"}

    source = stac(url=pgstac_server.url, searches={"first": both, "second": both}, page_size=7)
    duckdb_pipeline.run(source.with_resources("search_first", "search_second"))

    assert query(duckdb_pipeline, "SELECT COUNT(*), COUNT(DISTINCT id) FROM {joplin_twice}") == [(30, 30)]
    assert loaded_ids(duckdb_pipeline, "joplin_twice") == {"joplin": sample_catalog.item_ids_by_collection()["joplin"]}
