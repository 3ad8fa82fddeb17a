"""The API layer on a landing page that is not laid out as stac-fastapi lays it out: its links are followed, and the
conformance classes it declares at STAC API 1.1 count for pystac-client's own checks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pystac_client.conformance import ConformanceClasses
from pystac_client.warnings import DoesNotConformTo

from dlt_stac.auth.authorizers import Anonymous
from dlt_stac.errors import BadPage
from dlt_stac.reading.probes import api_filters_on_updated
from dlt_stac.server.api import StacApi
from dlt_stac.server.stac_io import stac_api_io
from stack.recording_api import RecordingApi

DECLARED = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.1.0/item-search#sort",
    "https://api.stacspec.org/v1.1.0/item-search#filter",
]


@pytest.fixture()
def api_under_a_prefix() -> Iterator[RecordingApi]:
    """An API whose collections and search live under `/catalog/`, as its landing page's links say."""
    api = RecordingApi()
    api.start()
    api.documents = {
        "/": {"type": "Catalog", "id": "api", "description": "", "stac_version": "1.0.0", "conformsTo": DECLARED,
              "links": [{"rel": "data", "href": f"{api.url}/catalog/collections", "type": "application/json"},
                        {"rel": "search", "href": f"{api.url}/catalog/search", "type": "application/geo+json",
                         "method": "POST"}]},
        "/catalog/collections": {"collections": [{"id": "c", "type": "Collection", "links": []}], "links": []},
        "/catalog/search": {"type": "FeatureCollection", "features": [], "links": []},
    }  # fmt: skip
    yield api
    api.stop()


def opened(api: RecordingApi) -> StacApi:
    return StacApi.open(api.url, stac_api_io(api.url, Anonymous(), 0, 0.0, 5.0))


def test_collections_and_search_come_from_the_landing_page_links(api_under_a_prefix: RecordingApi) -> None:
    api = opened(api_under_a_prefix)

    assert [collection["id"] for collection in api.collections] == ["c"]
    opening = [path for _, path, _ in api_under_a_prefix.received]
    assert opening[0] == "/"
    assert sorted(opening[1:]) == ["/catalog/collections?limit=250", "/catalog/search", "/queryables"], (
        "opened: the landing page, then the collections beside the probe of Sort and the queryables, once: an API "
        "whose sorted search finds no item needs no probe of its filters"
    )
    assert api.search_url == f"{api_under_a_prefix.url}/catalog/search"
    assert (api.capabilities.sort_prefix, api.capabilities.filters_hold) == ("properties.", True)
    assert api.search(collections=["c"]).url == api.search_url
    assert len(api_under_a_prefix.received) == len(opening), "what it can do is known: nothing more is asked"


def test_an_error_of_the_collections_is_raised_before_one_of_the_probes_sent_meanwhile(
    api_under_a_prefix: RecordingApi,
) -> None:
    down = (500, {"code": "InternalError", "description": "the database is down"})
    api_under_a_prefix.documents["/catalog/collections"] = down
    api_under_a_prefix.documents["/catalog/search"] = down

    with pytest.raises(BadPage, match=r"at .*/catalog/collections.*: the server answered 500"):
        opened(api_under_a_prefix)


def test_the_probe_of_filters_asks_about_the_collection_of_an_item_the_api_serves(
    api_under_a_prefix: RecordingApi,
) -> None:
    item = {"type": "Feature", "id": "i", "collection": "c", "geometry": None, "properties": {}, "links": []}
    api_under_a_prefix.documents["/catalog/search"]["features"] = [item]

    api = opened(api_under_a_prefix)

    assert api.capabilities.filters_hold
    probes = [(probe.get("collections"), "filter" in probe) for probe in api_under_a_prefix.posted]
    assert probes == [(None, False), (["c"], True)], (
        "the probe of Sort, then the probe of filters in the collection of the item it found: over the whole "
        "catalog, a filter cost pgstac 45 s where its statistics were new"
    )


def test_classes_declared_at_1_1_pass_pystac_clients_checks_and_a_missing_one_is_warned(
    api_under_a_prefix: RecordingApi,
) -> None:
    api = opened(api_under_a_prefix)

    assert api.conforms_to(ConformanceClasses.SORT) and api.conforms_to(ConformanceClasses.FILTER)
    assert not api.conforms_to(ConformanceClasses.FIELDS)
    assert api.conformance_classes() == DECLARED
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pystac-client warns DoesNotConformTo where it thinks a class is missing
        search = api.search(collections=["c"], filter={"op": "=", "args": [{"property": "id"}, "x"]})
    assert search.get_parameters()["sortby"] == [
        {"field": "properties.datetime", "direction": "asc"},
        {"field": "id", "direction": "asc"},
    ]
    with pytest.warns(DoesNotConformTo, match="FIELDS"):
        api.search(collections=["c"], fields=["id"])


def test_a_landing_page_that_offers_search_by_get_only_is_searched_by_get(api_under_a_prefix: RecordingApi) -> None:
    for link in api_under_a_prefix.documents["/"]["links"]:
        link.pop("method", None)  # a link's method is GET unless it says otherwise

    api = opened(api_under_a_prefix)
    search = api.search(
        collections=["c"], filter={"op": "=", "args": [{"property": "id"}, "x"]}, filter_lang="cql2-json"
    )

    assert api.capabilities.search_method == "GET" and search.method == "GET"
    assert search.get_parameters()["filter"] == "id = 'x'"
    assert search.get_parameters()["filter-lang"] == "cql2-text"
    assert search.get_parameters()["sortby"] == "+properties.datetime,+id"
    assert ("GET", "/catalog/search?limit=1&sortby=%2Bproperties.datetime%2C%2Bid", None) in api_under_a_prefix.received


@pytest.mark.parametrize(
    ("queryables", "filters_on_updated"),
    [
        ({"properties": {"updated": {"type": "string", "format": "date-time"}}}, True),
        ({"properties": {"updated": {"type": "string"}}}, False),  # compared as text, as pgstac does
        ({"properties": {"datetime": {"type": "string", "format": "date-time"}}}, False),
        ((404, {"detail": "not found"}), False),
    ],
    ids=["date-time-queryable", "text-queryable", "not-queryable", "no-queryables"],
)
def test_updated_is_a_cursor_only_where_the_api_lists_it_as_a_date_time_queryable(
    api_under_a_prefix: RecordingApi, queryables: Any, filters_on_updated: bool
) -> None:
    api_under_a_prefix.documents["/queryables"] = queryables

    assert api_filters_on_updated(opened(api_under_a_prefix)) is filters_on_updated


def test_updated_is_no_cursor_without_the_filter_extension(api_under_a_prefix: RecordingApi) -> None:
    landing = api_under_a_prefix.documents["/"]
    landing["conformsTo"] = [uri for uri in DECLARED if not uri.endswith("#filter")]
    api_under_a_prefix.documents["/queryables"] = {"properties": {"updated": {"format": "date-time"}}}

    assert not api_filters_on_updated(opened(api_under_a_prefix))
    assert "/queryables" not in [path for _, path, _ in api_under_a_prefix.received]
