"""Bad input and faults: a clear error before anything loads, retries that recover, and nothing lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import dlt
import psycopg2
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_stac import stac
from dlt_stac.errors import (
    MissingConformance,
    NotAStacApi,
    StacApiUnreachable,
    StacSourceError,
    UnknownCollections,
)
from dlt_stac.runs import run_in_packages
from stack import CatalogFolder, PgstacServer, RustacServer
from stack.fault_proxy import FaultProxy, Faults
from stack.pgstac import DATABASE
from stack.processes import free_port
from stack.recording_api import RecordingApi
from tests.stac_helpers import add_items, create_collection, loaded_ids, query, resource_state, rows_loaded

FAST_RETRIES: dict[str, Any] = {"max_retries": 4, "backoff_factor": 0.01, "timeout": 10.0}


def test_unreachable_url_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StacApiUnreachable, match=rf"Could not reach the STAC API at {url}: .*Check the URL"):
        stac(url=url, max_retries=0)


def test_a_page_that_is_not_a_landing_page_is_refused(rustac_server: RustacServer) -> None:
    with pytest.raises(NotAStacApi, match=r"/nope is not a STAC API landing page: it answered HTTP 404"):
        stac(url=f"{rustac_server.url}/nope")


def test_unknown_collection_names_the_existing_ones(rustac_server: RustacServer) -> None:
    with pytest.raises(UnknownCollections) as raised:
        stac(url=rustac_server.url, collections=["naip", "sentinel-3"])
    assert str(raised.value) == (
        f"Unknown collection(s) sentinel-3 at {rustac_server.url}. The API has: 3dep-lidar-copc, 3dep-lidar-dsm,"
        " cop-dem-glo-30, io-lulc, io-lulc-annual-v02, joplin, landsat-c2-l1, landsat-c2-l2, naip,"
        " planet-nicfi-analytic, sentinel-1-rtc, sentinel-2-l2a, us-census."
    )


def test_a_since_that_is_no_timestamp_is_named(rustac_server: RustacServer) -> None:
    with pytest.raises(StacSourceError) as raised:
        stac(url=rustac_server.url, since="last tuesday")
    assert str(raised.value) == (
        "`since` must be an RFC 3339 timestamp such as 2024-01-31T00:00:00Z, got 'last tuesday'"
    )


@pytest.mark.parametrize(
    "setting", [{"concurrency": 0}, {"page_size": -5}, {"concurrency": "4"}, {"package_size": 0.5}]
)
def test_a_count_below_one_or_not_a_number_is_named(setting: dict[str, Any], rustac_server: RustacServer) -> None:
    [(key, value)] = setting.items()
    with pytest.raises(StacSourceError, match=rf"^`{key}` must be a whole number of 1 or more, got {value!r}$"):
        stac(url=rustac_server.url, **setting)


@pytest.mark.parametrize("value", [0, -1.5, "32"])
def test_package_megabytes_must_be_above_zero(value: Any, rustac_server: RustacServer) -> None:
    with pytest.raises(StacSourceError, match=rf"^`package_megabytes` must be a number above 0, got {value!r}$"):
        stac(url=rustac_server.url, package_megabytes=value)


def test_a_search_method_other_than_post_or_get_is_named(rustac_server: RustacServer) -> None:
    with pytest.raises(StacSourceError, match=r"^`search_method` must be one of POST, GET, got 'PUT'$"):
        stac(url=rustac_server.url, search_method="PUT")
    assert stac(url=rustac_server.url, search_method="get").name == "stac", "in any case"


@pytest.fixture()
def collections_only_api() -> Iterator[str]:
    """A static STAC API snapshot: core and collections conformance, neither item search nor OGC API Features."""
    api = RecordingApi()
    api.documents = {
        "/": {
            "type": "Catalog",
            "id": "static",
            "description": "a static snapshot",
            "stac_version": "1.0.0",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections"],
            "links": [],
        },
        "/collections": {
            "collections": [{"type": "Collection", "id": "static-one", "links": [], "stac_version": "1.0.0"}],
            "links": [],
        },
    }
    api.start()
    yield f"{api.url}/"
    api.stop()


def test_search_needs_item_search_conformance(collections_only_api: str, duckdb_pipeline: dlt.Pipeline) -> None:
    with pytest.raises(MissingConformance, match=r"does not conform to ITEM_SEARCH, which searching items needs"):
        stac(url=collections_only_api, searches={"any": {}})

    with pytest.raises(PipelineStepFailed, match=r"does not conform to ITEM_SEARCH, which searching items needs"):
        duckdb_pipeline.run(stac(url=collections_only_api).with_resources("items"))


@pytest.mark.parametrize(
    "faults",
    [
        Faults(every=3, status=503, retry_after="0"),
        Faults(every=4, status=500, retry_after=None),
        Faults(every=5, status=429, retry_after="0"),
        Faults(every=4, status=408, retry_after=None),
        Faults(every=3, kinds=("drop",)),
        Faults(every=3, kinds=("cut",)),
        Faults(every=3, kinds=("short",)),
        Faults(every=3, kinds=("cut", "status", "short", "drop"), status=502, retry_after=None),
    ],
    ids=["503-retry-after", "500", "429", "408", "dropped-connection", "cut-body", "short-body", "all-kinds-mixed"],
)
def test_retries_recover_from_server_faults_and_broken_bodies_on_get_and_post(
    faults: Faults, pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    with FaultProxy(pgstac_server.url, faults) as proxy:
        duckdb_pipeline.run(stac(url=proxy.url, collections=["naip", "joplin"], page_size=50, **FAST_RETRIES))

    expected = sample_catalog.item_ids_by_collection()
    assert loaded_ids(duckdb_pipeline) == {"naip": expected["naip"], "joplin": expected["joplin"]}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1030,)]
    assert rows_loaded(duckdb_pipeline) == 1030, "a retried page was not also kept in its broken form"
    assert faults.faults_sent >= 5


def test_a_server_error_mid_run_loads_nothing_and_the_rerun_loads_everything_once(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        source = stac(url=proxy.url, collections=["naip"], page_size=100, **FAST_RETRIES).with_resources("items")
        # the probes of the sort, the queryables, of the filters and for `updated`, the two cut probes and three
        # pages pass, then the server fails
        faults.every, faults.requests_seen = 1, -9
        with pytest.raises(PipelineStepFailed, match=r"cannot be read at .*/search: the server answered 503"):
            duckdb_pipeline.run(source)
        assert duckdb_pipeline.list_extracted_load_packages() == []
        assert duckdb_pipeline.list_normalized_load_packages() == []
        assert resource_state(duckdb_pipeline) == {}, "no cursor moved"

        faults.every = 0
        duckdb_pipeline.run(stac(url=proxy.url, collections=["naip"], page_size=100, **FAST_RETRIES))

    assert loaded_ids(duckdb_pipeline) == {"naip": sample_catalog.item_ids_by_collection()["naip"]}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1000,)]
    assert rows_loaded(duckdb_pipeline) == 1000


def test_a_server_error_after_some_packages_keeps_them_and_the_rerun_goes_on_from_there(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    faults = Faults()
    with FaultProxy(pgstac_server.url, faults) as proxy:
        options: dict[str, Any] = {"collections": ["naip"], "page_size": 100, "package_size": 200, **FAST_RETRIES}
        source = stac(url=proxy.url, concurrency=1, **options).with_resources("items")
        # opening the API probed the sort and the filters and read the queryables; the probe for `updated` and five
        # pages pass (two packages of 200), then it fails for good
        faults.every, faults.requests_seen = 1, -6
        with pytest.raises(PipelineStepFailed, match=r"cannot be read at .*/search: the server answered 503"):
            run_in_packages(duckdb_pipeline, source)
        assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(400,)]

        faults.every = 0
        report = run_in_packages(duckdb_pipeline, stac(url=proxy.url, **options).with_resources("items"))

    assert report.rows() == {"items": 600, "_dlt_pipeline_state": 3}
    assert loaded_ids(duckdb_pipeline) == {"naip": sample_catalog.item_ids_by_collection()["naip"]}
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1000,)]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_permanent_error_is_not_retried_and_named(
    status: int, pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    faults = Faults(status=status, retry_after=None)
    with FaultProxy(pgstac_server.url, faults) as proxy:
        source = stac(url=proxy.url, collections=["naip"], page_size=100, concurrency=1, **FAST_RETRIES)
        # opening the API probed the sort and the filters and read the queryables; the probe for `updated` and three
        # pages pass, then every request is refused
        faults.every, faults.requests_seen = 1, -4
        with pytest.raises(PipelineStepFailed, match=rf"cannot be read at .*/search: the server answered {status}"):
            duckdb_pipeline.run(source.with_resources("items"))

    assert faults.faults_sent == 1


def test_a_next_link_that_repeats_the_page_is_an_error(
    pgstac_server: PgstacServer, duckdb_pipeline: dlt.Pipeline
) -> None:
    repeated = r"at http://.*/search: its next link repeats a page already read"
    with (
        FaultProxy(pgstac_server.url, Faults(repeat_next_on="/search")) as proxy,
        pytest.raises(PipelineStepFailed, match=repeated),
    ):
        duckdb_pipeline.run(stac(url=proxy.url, collections=["joplin"], page_size=7))


def test_malformed_items_land_in_rejected_items_and_the_rest_loads(
    pgstac_server: PgstacServer, sample_catalog: CatalogFolder, duckdb_pipeline: dlt.Pipeline
) -> None:
    collection_id = f"malformed-{uuid.uuid4().hex[:8]}"
    create_collection(pgstac_server.url, sample_catalog.files_of("joplin").collection(), collection_id)
    joplin = list(sample_catalog.files_of("joplin").items())[:5]
    add_items(pgstac_server.url, collection_id, joplin)
    bad_date, no_date = joplin[0]["id"], joplin[1]["id"]
    with psycopg2.connect(pgstac_server.cluster.url(DATABASE)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pgstac.items SET content = jsonb_set(content, '{properties,datetime}', '\"last tuesday\"')"
            " WHERE collection = %s AND id = %s",
            (collection_id, bad_date),
        )
        cursor.execute(
            "UPDATE pgstac.items SET content = jsonb_set(content, '{properties,datetime}', 'null')"
            " WHERE collection = %s AND id = %s",
            (collection_id, no_date),
        )

    duckdb_pipeline.run(stac(url=pgstac_server.url, collections=[collection_id], page_size=2))

    assert rows_loaded(duckdb_pipeline) == 3
    assert loaded_ids(duckdb_pipeline) == {collection_id: {item["id"] for item in joplin[2:]}}
    rejected = query(duckdb_pipeline, "SELECT collection, item_id, reason, page_url, raw_json FROM {rejected_items}")
    by_id = {row[1]: row for row in rejected}
    assert len(rejected) == rows_loaded(duckdb_pipeline, "rejected_items") == 2
    assert set(by_id) == {bad_date, no_date}
    assert by_id[bad_date][2] == "properties.datetime is not an RFC 3339 timestamp: 'last tuesday'"
    assert by_id[no_date][2] == "properties.datetime is null and there is no properties.start_datetime"
    assert all(row[0] == collection_id and row[3] == f"{pgstac_server.url}/search" for row in rejected)
    assert json.loads(by_id[bad_date][4])["properties"]["datetime"] == "last tuesday"
    assert set(duckdb_pipeline.default_schema.get_table_columns("rejected_items")) == {
        "rejection_id", "collection", "item_id", "reason", "page_url", "raw_json", "rejected_at", "_dlt_load_id",
        "_dlt_id",
    }  # fmt: skip

    backfill = stac(url=pgstac_server.url, collections=[collection_id], page_size=2, until="2100-01-01T00:00:00Z")
    duckdb_pipeline.run(backfill)  # reads the same malformed items again
    assert rows_loaded(duckdb_pipeline, "rejected_items") == 2
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {rejected_items}") == [(2,)]
