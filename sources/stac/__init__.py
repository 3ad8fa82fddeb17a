"""A dlt source for STAC APIs: collections, items and named searches, loaded incrementally on datetime (or on
`updated`, where the items carry it and the API filters on it; see `planning/cursor_fields.py`).

    from dlt_stac import run_in_packages, stac

    source = stac(url="https://stac.terrabyte.lrz.de/public/api", collections=["sentinel-2-c1-l2a"])
    report = run_in_packages(pipeline, source)  # every item, in load packages of bounded size

`pipeline.run(source)` loads one package per resource, and warns how much is left to read. Every argument can
come from `.dlt/config.toml` under `[sources.stac]`; see that file for each key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import dlt
from dlt.sources import DltResource

from .auth import StacApiCredentials
from .errors import StacSourceError
from .reading import (
    LISTING_COLUMNS,
    LISTING_TABLE,
    NamedSearch,
    PackageLimits,
    ReadingAcrossPackages,
    Reconciler,
    Selection,
    checked_search,
    items_reading,
    package_limits,
    search_reading,
    window_settings,
)
from .runs import RunReport, reconcile_package, resource_package, run_in_packages
from .server import StacApi, open_api
from .tables import (
    COLLECTION_COLUMNS,
    ITEM_COLUMNS,
    collection_row,
    content_hash,
    quiet_json_text_hints,
    with_merged_table,
    with_rejected_items_table,
)

__all__ = ["RunReport", "StacApiCredentials", "StacSourceError", "run_in_packages", "stac"]

ITEM_KEY = ("collection", "id")


@dlt.source(name="stac", section="stac", max_table_nesting=0)
def stac(
    url: str = dlt.config.value,
    collections: list[str] | None = None,
    collection_prefix: str | None = None,
    searches: dict[str, dict[str, Any]] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    lag: float = 0.0,
    allow_external_schedulers: bool = False,
    reconcile: bool = False,
    page_size: int = 250,
    concurrency: int = 2,
    search_method: str = "POST",
    package_size: int = 20_000,
    package_megabytes: float = 32.0,
    max_retries: int = 5,
    backoff_factor: float = 0.5,
    timeout: float = 60.0,
    credentials: StacApiCredentials = dlt.secrets.value,
) -> list[DltResource]:
    """The collections, items and named searches of one STAC API.

    Opens the API and checks every input before anything loads: an unreachable URL, a server that
    is no STAC API, refused credentials, unknown collections, a missing conformance class or bad
    search parameters raise a `StacSourceError` that says what is wrong.

    Items load in packages of at most about `package_size` items or `package_megabytes`: each `pipeline.run`
    of the source loads the next package of every resource that has items left to read, and commits with it
    how far they were read, so that a crash loses at most the package in flight. `run_in_packages(pipeline,
    source)` (`runs.py`) runs the source until everything is read, after completing what an interrupted run
    left.

    Args:
        url: The API's landing page.
        collections: Ids of the collections to load; default all the API shows.
        collection_prefix: Only collections whose id starts with this (e.g. `pn56su-dss-0001.`).
        searches: Named searches, `{name: {collections, bbox, intersects, datetime, ids, query, filter,
            filter_lang, sortby, fields, limit, max_items, table_name}}`; each loads into `search_<name>`.
        since: Initial value of the datetime cursor (RFC 3339); default the full history. For a collection that
            loads by `updated`, the earliest acquisition time (`datetime`) it loads.
        until: End of the window; a run with `until` is a stateless backfill that leaves cursors alone.
        lag: Seconds re-read behind the cursor, for items that arrive late.
        allow_external_schedulers: Take the window from an external scheduler's data interval (Airflow).
        reconcile: Also make the tables what the API serves: load the items they lack, reload the items whose
            content changed, delete the items and collections the API no longer has (`reading/reconcile.py`). It reads
            every item of the selection once: run it now and then (daily, weekly), not on every run.
        page_size: Items per page asked of the server.
        concurrency: Searches paged at the same time; each collection's window is cut by datetime into
            up to this many parts. 1 pages one search after another.
        search_method: "POST" (a JSON body) or "GET" (a query string, filters as CQL2 text). POST turns into GET
            where the landing page offers GET only, or where the server answers a POST search with 405.
        package_size: Items (and rejected items) per load package of a resource: a package ends with the
            page that reaches this many, or `package_megabytes` of Arrow data, whichever comes first.
        package_megabytes: Megabytes of Arrow data per load package of a resource, at most about.
        max_retries: Retries of a request on 408, 429, 5xx, connection errors, timeouts and broken answers.
        backoff_factor: Exponential backoff between retries, in seconds.
        timeout: Seconds to wait for the server to answer a request.
        credentials: How to sign in, from `[sources.stac.credentials]` in `.dlt/secrets.toml`; with none
            configured, the refresh token that `login` cached for this API, else anonymous.
    """
    package = package_limits(package_size, package_megabytes)
    quiet_json_text_hints()
    api = open_api(url, credentials, page_size, concurrency, search_method, max_retries, backoff_factor, timeout)
    settings = window_settings(since, until, lag, allow_external_schedulers)
    selected = api.select_collections(collections, collection_prefix)
    named = [checked_search(api, name, config, page_size) for name, config in (searches or {}).items()]
    search_readings = [
        ReadingAcrossPackages(partial(search_reading, api, search, settings=settings)) for search in named
    ]
    item_reading = ReadingAcrossPackages(
        lambda state: items_reading(api, selected, state, settings, page_size, concurrency)
    )
    selection = Selection(collections, collection_prefix, settings.since)
    reconciler = Reconciler(api, selected, selection, settings, page_size, concurrency) if reconcile else None
    return [
        collections_resource(api, selected, reload_all=reconcile),
        with_rejected_items_table(items(item_reading, package)),
        *(
            with_rejected_items_table(search_resource(search, reading, package))
            for search, reading in zip(named, search_readings, strict=True)
        ),
        *([reconcile_resource(reconciler, package)] if reconciler else []),
        queryables(api),
        conformance(api),
    ]


@dlt.resource(name="collections", write_disposition="merge", primary_key="id", columns=COLLECTION_COLUMNS)
def collections_resource(api: StacApi, selected: list[str], reload_all: bool = False) -> Iterator[list[dict[str, Any]]]:
    """The selected collections, one row each, merged on `id`: those new or changed since their last load, or
    all of them with `reload_all` (a reconcile makes the table what the API serves, whatever happened to it).

    The resource's state keeps the `content_hash` of each selected collection as served (its links aside, which
    servers write for each request), committed with the package that loads it; a run where none changed loads
    no collection row.
    """
    state = dlt.current.resource_state()
    wanted = set(selected)
    served = {collection["id"]: collection for collection in api.collections if collection["id"] in wanted}
    loaded: dict[str, str] = {} if reload_all else state.get("content_hashes", {})
    hashes = {collection_id: content_hash(collection) for collection_id, collection in served.items()}
    changed = [
        collection_row(served[collection_id])
        for collection_id in hashes
        if hashes[collection_id] != loaded.get(collection_id)
    ]
    state["content_hashes"] = hashes
    if changed:
        yield changed


@dlt.resource(write_disposition="merge", primary_key=ITEM_KEY, columns=ITEM_COLUMNS)
def items(reading: ReadingAcrossPackages, package: PackageLimits) -> Iterator[Any]:
    """The items of the selected collections in one `items` table, merged on `(collection, id)`.

    Each collection has its own cursor in this resource's state, on `datetime`, or on `updated` where its
    items carry it and the API filters on it (chosen at the collection's first load), so adding a collection
    later starts it from its own initial value and never moves another's cursor. Up to `concurrency`
    searches are paged at once; each package's items move the cursors, saved with the package.
    """
    yield from resource_package(reading, package, report_cursor_fields=True)


def search_resource(search: NamedSearch, reading: ReadingAcrossPackages, package: PackageLimits) -> DltResource:
    """The items of one named search in its own table, merged on `(collection, id)`, with its own cursor."""

    def search_items() -> Iterator[Any]:
        yield from resource_package(reading, package)

    return dlt.resource(
        search_items,
        name=f"search_{search.name}",
        table_name=search.table_name,
        write_disposition="merge",
        primary_key=ITEM_KEY,
        columns=ITEM_COLUMNS,
    )


def reconcile_resource(reconciler: Reconciler, package: PackageLimits) -> DltResource:
    """A reconcile's listing and the changes it applies: to `items` (merged on `(collection, id)`, where rows
    with `_stac_deleted` delete their item), `_stac_listing`, `collections` and `rejected_items`."""

    def reconcile() -> Iterator[Any]:
        yield from reconcile_package(reconciler, package)

    resource = dlt.resource(
        reconcile, name="reconcile", table_name="items", write_disposition="merge", primary_key=ITEM_KEY,
        columns=ITEM_COLUMNS,
    )  # fmt: skip
    with_merged_table(resource, LISTING_TABLE, ITEM_KEY, LISTING_COLUMNS)
    with_merged_table(resource, "collections", "id", COLLECTION_COLUMNS)
    return with_rejected_items_table(resource)


@dlt.resource(write_disposition="replace", selected=False)
def queryables(api: StacApi) -> Iterator[dict[str, Any]]:
    """The API's queryables (filter extension): one row per property, with its JSON schema."""
    for name, schema in api.read_queryables().get("properties", {}).items():
        yield {"name": name, "title": schema.get("title"), "type": schema.get("type"), "definition": schema}


@dlt.resource(write_disposition="replace", selected=False)
def conformance(api: StacApi) -> Iterator[list[dict[str, Any]]]:
    """The conformance classes the API declares, one row each."""
    yield [{"uri": uri} for uri in api.conformance_classes()]
