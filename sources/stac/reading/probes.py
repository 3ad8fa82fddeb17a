"""What a run asks the server before it reads, and nothing else does: which collections hold anything new (and how
many items, one search per `COLLECTIONS_PER_SEARCH` collections), which field each new collection's cursor can
follow (`updated` where none of its items lacks it), and where to cut a large window so that several searches read
it at once.

Two probes with `limit=1` find where a window's items begin and end and how many there are (`numberMatched`); the
cut points divide that span evenly, and a window the probe finds empty is not searched; a window whose items the
many-collection search counted to a page or less is neither probed nor cut. Probes need sorted searches
(`Capabilities.sorts`); without them, or with `concurrency` 1, each window is one part. The probes only place the
cuts: the parts always cover the whole window, and each item is admitted by exactly the part that holds its cursor
value (`datetime`, else `start_datetime`; or `updated`: `planning/cursor_fields.py`). A range item spanning a cut is
found by the earlier part because STAC's `datetime` parameter matches every item whose interval overlaps the one
asked for. The pure planning these answers feed is in `planning/cuts.py`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from dlt.common import logger
from pystac_client import ItemSearch
from pystac_client.conformance import ConformanceClasses

from ..errors import MalformedItem, StacSourceError
from ..planning import (
    DATETIME,
    UPDATED_NAME,
    Conditions,
    Cursor,
    CursorField,
    CutWindow,
    PlannedWindow,
    Window,
    any_of,
    collections_per_search,
    cut_points,
    groups_of,
    is_null,
    loaded_at_start,
    one_page,
    parts_of,
)
from ..server import Page, StacApi, read_concurrently
from ..tables import item_row


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


def api_filters_on_updated(api: StacApi) -> bool:
    """Whether the API can filter and sort items on `updated` as a timestamp: it sorts, `updated` is a date-time
    queryable (pgstac, for one, compares a property it does not list as text), and its filters find the items
    that lack `updated` (`Capabilities.filters_hold`)."""
    return api.capabilities.sorts and api.capabilities.filters_on_timestamp(UPDATED_NAME)


def chosen_fields(
    api: StacApi, collections: list[str], since: datetime | None, page_size: int, concurrency: int
) -> dict[str, CursorField]:
    """The field of each collection loaded for the first time: `updated` where the API filters on it and no item
    of the collection lacks `updated`; else `datetime`. A search per `COLLECTIONS_PER_SEARCH` collections finds
    those with an item that lacks it, `concurrency` at once.

    An empty collection gets `updated` too, but keeps no checkpoint until something loads: the choice is made
    again at its next run.
    """
    if not collections or not api_filters_on_updated(api):
        return dict.fromkeys(collections, DATETIME)
    lacking_updated = dict.fromkeys(collections, is_null(UPDATED_NAME))
    searches = [
        _lacking_updated(api, group, page_size)
        for group in groups_of(lacking_updated, collections_per_search(api.capabilities.search_method))
    ]
    lacking = {collection for _, found in read_concurrently(searches, concurrency) for collection in found}
    return {
        collection: DATETIME if collection in lacking else CursorField(UPDATED_NAME, since)
        for collection in collections
    }


def _lacking_updated(api: StacApi, conditions: Conditions, page_size: int) -> Iterator[set[str]]:
    """Yields once the collections of `conditions` with an item that lacks `updated`: all of them where the API
    could not tell."""
    try:
        matched = next(items_matched(api, conditions, page_size))
    except StacSourceError as error:
        logger.warning(f"{', '.join(conditions)} load by `datetime`: the API could not tell which of their items "
                       f"lack `updated` ({error})")  # fmt: skip
        yield set(conditions)
        return
    yield set(matched)


def collection_search(
    api: StacApi,
    collection: str,
    field: CursorField,
    window: Window,
    limit: int,
    descending: bool = False,
    loaded_at_start: frozenset[str] = frozenset(),
) -> ItemSearch:
    """The search for `window`'s items of `collection`, in `field`'s order (or its reverse); where the API's
    filters hold (`Capabilities.filters_hold`), without the items `loaded_at_start` (the ids at exactly the window's
    start loaded before; else they are read again and skipped by id)."""
    excluded = loaded_at_start if api.capabilities.filters_hold else frozenset()
    parameters = field.search_parameters(window, excluded, api.capabilities.ids_bytes_at_most)
    if descending:
        parameters["sortby"] = field.descending
    return api.search(collections=[collection], limit=limit, **parameters)


def windows_with_items(
    api: StacApi,
    windows: list[PlannedWindow],
    cursors: dict[str, Cursor],
    page_size: int,
    concurrency: int,
) -> tuple[list[PlannedWindow], dict[str, int | None]]:
    """The windows that hold at least one item not loaded yet, and how many items each holds where the search
    saw them all (else None). Found with a search per `COLLECTIONS_PER_SEARCH` collections (each collection's
    window as a CQL2 condition, less the items at its start that were loaded before), `concurrency` at once,
    instead of probes per collection, so that a run over many collections costs what changed. Where the API's
    filters cannot be trusted with such conditions (`Capabilities.filters_hold`), or for one window, all
    of them, uncounted.
    """
    if len(windows) < 2 or not api.capabilities.filters_hold:
        return windows, {}
    groups = groups_of(_conditions_of(api, windows, cursors), collections_per_search(api.capabilities.search_method))
    searches = [items_matched(api, group, page_size) for group in groups]
    matched = {
        collection: count
        for _, found in read_concurrently(searches, concurrency)
        for collection, count in found.items()
    }
    return [window for window in windows if window[0] in matched], matched


def _conditions_of(api: StacApi, windows: list[PlannedWindow], cursors: dict[str, Cursor]) -> Conditions:
    """Each collection's window as a CQL2 condition, less the items at its start that were loaded before (each
    collection's ids a share of one request)."""
    ids_bytes = api.capabilities.ids_bytes_at_most // collections_per_search(api.capabilities.search_method)
    return {
        collection: field.window_condition(window, loaded_at_start(window, cursors[collection]), ids_bytes)
        for collection, field, window in windows
    }


def bundle_search(api: StacApi, windows: list[PlannedWindow], cursors: dict[str, Cursor], limit: int) -> ItemSearch:
    """The search for the items of a bundle's windows, in their cursor field's order where the API sorts."""
    conditions = _conditions_of(api, windows, cursors)
    order = {"sortby": windows[0][1].ascending} if api.capabilities.sorts else {}
    return api.search(collections=list(conditions), filter=any_of(conditions), limit=limit, **order)


def cut_windows(
    api: StacApi,
    windows: list[PlannedWindow],
    page_size: int,
    concurrency: int,
    counted: dict[str, int | None] | None = None,
) -> list[CutWindow]:
    """Each `(collection, field, window)` cut into the parts that its searches read, with the items it holds;
    the probes run `concurrency` at once. A window whose items were `counted` to a page or less is one part,
    with no probes."""
    counted = counted or {}
    if concurrency <= 1 or not api.capabilities.sorts:
        return [CutWindow([window], counted.get(collection)) for collection, _, window in windows]
    to_probe = [
        index for index, (collection, _, _) in enumerate(windows) if not one_page(counted.get(collection), page_size)
    ]
    probed = [
        _cuts_found(api, field, window, *_probes_of(api, collection, field, window), page_size, concurrency)
        for collection, field, window in (windows[index] for index in to_probe)
    ]
    cuts = {to_probe[position]: probe for position, probe in read_concurrently(probed, concurrency)}
    return [
        CutWindow(parts_of(window, cuts[index][0]), cuts[index][1])
        if index in cuts
        else CutWindow([window], counted.get(collection))
        for index, (collection, _, window) in enumerate(windows)
    ]


def _probes_of(api: StacApi, collection: str, field: CursorField, window: Window) -> tuple[ItemSearch, ItemSearch]:
    """Searches for the window's earliest and its latest item."""
    return (
        collection_search(api, collection, field, window, 1),
        collection_search(api, collection, field, window, 1, descending=True),
    )


def _cuts_found(
    api: StacApi,
    field: CursorField,
    window: Window,
    earliest: ItemSearch,
    latest: ItemSearch,
    page_size: int,
    parts: int,
) -> Iterator[tuple[list[datetime] | None, int | None]]:
    """Yields once where to cut the window into up to `parts` (no cut for one page), or None if it is empty; and
    how many items it holds, where the API says (`numberMatched`)."""
    first = api.first_page(earliest)
    if not first.entries:
        yield None, 0
        return
    if first.matched is not None:
        parts = min(parts, math.ceil(first.matched / page_size))
    if parts <= 1:
        yield [], first.matched
        return
    low, high = _cursor_of(field, first), _cursor_of(field, api.first_page(latest))
    yield cut_points(window, low, high, parts), first.matched


def _cursor_of(field: CursorField, page: Page) -> datetime | None:
    try:
        return field.value_of(item_row(page.entries[0])) if page.entries else None
    except MalformedItem:  # the part that reads it rejects it; here it only cannot help to cut
        return None
