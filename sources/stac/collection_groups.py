"""Asking the API about many collections at once: one search per `COLLECTIONS_PER_SEARCH` collections, each
collection with a CQL2 condition of its own (OR-ed), so that a run over 1,000 collections costs a few dozen
requests, not a few per collection. Needs the Filter extension; with Fields, the pages carry ids alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from pystac_client import ItemSearch
from pystac_client.conformance import ConformanceClasses

from .api import StacApi

COLLECTIONS_PER_SEARCH = {"POST": 25, "GET": 10}
"""Collections one search asks about, by how searches are sent. pgstac's time per search grows faster than the
number of collections in it (1,000 collections with nothing new, measured: 100 a search 290 ms, 25 a search
37 ms, all 1,000 in one search over 7 minutes and 16 GB of server memory). A GET carries them in its query
string: 25 collections' windows take 8.8 KB of it, more than nginx's default 8 KB request line; 10 take 3.5 KB."""


def collections_per_search(api: StacApi) -> int:
    return COLLECTIONS_PER_SEARCH[api.search_method]


Conditions = dict[str, dict[str, Any]]
"""A CQL2 JSON condition per collection id."""


def groups_of(conditions: Conditions, size: int) -> list[Conditions]:
    """`conditions` in groups of `size` collections, a search's worth each."""
    collections = list(conditions)
    return [
        {collection: conditions[collection] for collection in collections[start : start + size]}
        for start in range(0, len(collections), size)
    ]


def items_matched(api: StacApi, conditions: Conditions, page_size: int) -> Iterator[dict[str, int | None]]:
    """Yields once, for each collection that holds an item meeting its condition, how many do: exact where the
    last page of the search holds them all, else None (at least one)."""
    yield from _matched(api, list(conditions), lambda pending: any_of({c: conditions[c] for c in pending}), page_size)


def items_meeting(
    api: StacApi, collections: list[str], condition: dict[str, Any], page_size: int
) -> Iterator[dict[str, int | None]]:
    """As `items_matched`, for one `condition` that the items of every collection are to meet."""
    yield from _matched(api, collections, lambda _: condition, page_size)


def _matched(
    api: StacApi, collections: list[str], filter_of: Callable[[list[str]], dict[str, Any]], page_size: int
) -> Iterator[dict[str, int | None]]:
    """Yields once how many items of each collection meet the filter (`filter_of` the collections searched).

    A search that fills its page may hide collections behind the first ones: it is asked again without the
    collections it found, until a page comes back with no page after it.
    """
    matched: dict[str, int | None] = {}
    pending = collections
    while pending:
        page = api.first_page(_search_of_several(api, pending, filter_of(pending), page_size))
        seen = Counter(str(item.get("collection")) for item in page.entries if isinstance(item, dict))
        found = {collection: count for collection, count in seen.items() if collection in pending}
        matched.update({collection: count if page.last else None for collection, count in found.items()})
        if page.last or not found:
            break
        pending = [collection for collection in pending if collection not in found]
    yield matched


def _search_of_several(api: StacApi, collections: list[str], condition: dict[str, Any], limit: int) -> ItemSearch:
    fields = {"fields": ["id", "collection"]} if api.conforms_to(ConformanceClasses.FIELDS) else {}
    return api.search(collections=collections, filter=condition, limit=limit, **fields)


def any_of(conditions: Conditions) -> dict[str, Any]:
    """The CQL2 JSON condition that an item is of one of the collections and meets that collection's condition."""
    of_each = [
        {"op": "and", "args": [{"op": "=", "args": [{"property": "collection"}, collection]}, condition]}
        for collection, condition in conditions.items()
    ]
    return {"op": "or", "args": of_each} if len(of_each) > 1 else of_each[0]
