"""Where a collection's window is cut, so that several searches read one large collection at once.

Two probes with `limit=1` find where the window's items begin and end and how many there are
(`numberMatched`); the cut points divide that span evenly, and a window the probe finds empty is not
searched. Probes need the Sort extension; without it, or with `concurrency` 1, each window is one part. The
probes only place the cuts: the parts always cover the whole window, and each item is admitted by exactly
the part that holds its cursor value (`datetime`, else `start_datetime`; or `updated`, see `cursor_fields.py`).
A range item that spans a cut is found by the part that holds its `start_datetime`: by a filter on it where the
API filters, else because STAC's `datetime` parameter matches every item whose interval overlaps the one asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pystac_client import ItemSearch
from pystac_client.conformance import ConformanceClasses

from .api import StacApi
from .cursor_fields import CursorField
from .errors import MalformedItem
from .paging import Page, read_concurrently
from .rows import item_row
from .windows import Cursor, Window, loaded_at_start


def collection_search(
    api: StacApi,
    collection: str,
    field: CursorField,
    window: Window,
    limit: int,
    descending: bool = False,
    loaded_at_start: frozenset[str] = frozenset(),
) -> ItemSearch:
    """The search for `window`'s items of `collection`, in `field`'s order (or its reverse); where the API
    filters, without the items `loaded_at_start` (the ids at exactly the window's start loaded before)."""
    filters = api.conforms_to(ConformanceClasses.FILTER)
    parameters = field.search_parameters(window, filters, loaded_at_start if filters else frozenset())
    if descending:
        parameters["sortby"] = field.descending
    return api.search(collections=[collection], limit=limit, **parameters)


COLLECTIONS_PER_SEARCH = 25
"""Collections whose windows one search asks about. pgstac's time per search grows faster than the number of
collections in it (1,000 collections with nothing new, measured: 100 a search 290 ms, 25 a search 37 ms, all
1,000 in one search over 7 minutes and 16 GB of server memory)."""


def windows_with_items(
    api: StacApi,
    windows: list[tuple[str, CursorField, Window]],
    cursors: dict[str, Cursor],
    page_size: int,
    concurrency: int,
) -> list[tuple[str, CursorField, Window]]:
    """The windows that hold at least one item not loaded yet, found with a search per `COLLECTIONS_PER_SEARCH`
    collections (each collection's window as a CQL2 condition, less the items at its start that were loaded
    before, OR-ed), `concurrency` at once, instead of a probe per collection, so that a run over many collections
    costs what changed. Without the Filter extension, or for one window, all of them.
    """
    if len(windows) < 2 or not api.conforms_to(ConformanceClasses.FILTER):
        return windows
    groups = [
        windows[start : start + COLLECTIONS_PER_SEARCH] for start in range(0, len(windows), COLLECTIONS_PER_SEARCH)
    ]
    searches = [_collections_with_items(api, group, cursors, page_size) for group in groups]
    found = {collection for _, collections in read_concurrently(searches, concurrency) for collection in collections}
    return [window for window in windows if window[0] in found]


def _collections_with_items(
    api: StacApi, windows: list[tuple[str, CursorField, Window]], cursors: dict[str, Cursor], page_size: int
) -> Iterator[set[str]]:
    """Yields once the collections of `windows` that hold an item not loaded yet.

    A search that fills its page may hide collections behind the first ones: it is asked again without the
    collections it found, until a page comes back with no page after it.
    """
    found: set[str] = set()
    pending = windows
    while pending:
        page = api.first_page(_search_of_several(api, pending, cursors, page_size))
        seen = {str(item.get("collection")) for item in page.entries if isinstance(item, dict)}
        found |= seen
        if page.last or not seen & {collection for collection, _, _ in pending}:
            break
        pending = [window for window in pending if window[0] not in seen]
    yield found


def _search_of_several(
    api: StacApi, windows: list[tuple[str, CursorField, Window]], cursors: dict[str, Cursor], limit: int
) -> ItemSearch:
    conditions = [
        _not_loaded_in(collection, field.window_condition(window), loaded_at_start(window, cursors[collection]))
        for collection, field, window in windows
    ]
    fields = {"fields": ["id", "collection"]} if api.conforms_to(ConformanceClasses.FIELDS) else {}
    return api.search(
        collections=[collection for collection, _, _ in windows],
        filter={"op": "or", "args": conditions},
        limit=limit,
        **fields,
    )


EXCLUDED_IDS_AT_MOST = 100
"""Ids loaded at a window's start that a condition leaves out one by one; a window with more keeps them in."""


def _not_loaded_in(collection: str, window: dict[str, Any], loaded: set[str]) -> dict[str, Any]:
    """The condition that an item is one of `collection`'s in its window, and not among the `loaded` ones."""
    conditions = [{"op": "=", "args": [{"property": "collection"}, collection]}, window]
    if loaded and len(loaded) <= EXCLUDED_IDS_AT_MOST:
        same_ids = [{"op": "=", "args": [{"property": "id"}, item_id]} for item_id in sorted(loaded)]
        conditions.append({"op": "not", "args": [{"op": "or", "args": same_ids} if len(same_ids) > 1 else same_ids[0]]})
    return {"op": "and", "args": conditions}


def cut_windows(
    api: StacApi, windows: list[tuple[str, CursorField, Window]], page_size: int, concurrency: int
) -> list[list[Window]]:
    """Each `(collection, field, window)` cut into the parts that its searches read (none for an empty window);
    the probes run `concurrency` at once."""
    if concurrency <= 1 or not api.conforms_to(ConformanceClasses.SORT):
        return [[window] for _, _, window in windows]
    probed = [
        _probed(api, field, window, *_probes_of(api, collection, field, window), page_size, concurrency)
        for collection, field, window in windows
    ]
    cuts = dict(read_concurrently(probed, concurrency))
    return [_parts_of(window, cuts[index]) for index, (_, _, window) in enumerate(windows)]


def _parts_of(window: Window, cut_points: list[datetime] | None) -> list[Window]:
    return [] if cut_points is None else window.split(cut_points)


def _probes_of(api: StacApi, collection: str, field: CursorField, window: Window) -> tuple[ItemSearch, ItemSearch]:
    """Searches for the window's earliest and its latest item."""
    return (
        collection_search(api, collection, field, window, 1),
        collection_search(api, collection, field, window, 1, descending=True),
    )


def _probed(
    api: StacApi,
    field: CursorField,
    window: Window,
    earliest: ItemSearch,
    latest: ItemSearch,
    page_size: int,
    parts: int,
) -> Iterator[list[datetime] | None]:
    """Yields once where to cut the window into up to `parts` (no cut for one page), or None if it is empty."""
    first = api.first_page(earliest)
    if not first.entries:
        yield None
        return
    if first.matched is not None:
        parts = min(parts, math.ceil(first.matched / page_size))
    if parts <= 1:
        yield []
        return
    yield _cut_points(window, _cursor_of(field, first), _cursor_of(field, api.first_page(latest)), parts)


def _cursor_of(field: CursorField, page: Page) -> datetime | None:
    try:
        return field.value_of(item_row(page.entries[0])) if page.entries else None
    except MalformedItem:  # the part that reads it rejects it; here it only cannot help to cut
        return None


def _cut_points(window: Window, low: datetime | None, high: datetime | None, parts: int) -> list[datetime]:
    """Whole seconds that divide `[low, high]` into `parts` equal spans, strictly inside the window."""
    if low is None or high is None or high <= low:
        return []
    step = (high - low) / parts
    points = sorted({(low + step * index).replace(microsecond=0) for index in range(1, parts)})
    return [
        point
        for point in points
        if (window.start is None or point > window.start) and (window.end is None or point < window.end)
    ]
