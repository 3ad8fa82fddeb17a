"""Where a collection's window is cut, so that several searches read one large collection at once.

Two probes with `limit=1` find where the window's items begin and end and how many there are
(`numberMatched`); the cut points divide that span evenly, and a window the probe finds empty is not
searched; a window whose items the many-collection search counted to a page or less is neither probed nor
cut. Probes need sorted searches (`Capabilities.sorts`); without them, or with `concurrency` 1, each window is one
part. The probes only place the cuts: the parts always cover the whole window, and each item is admitted by exactly
the part that holds its cursor value (`datetime`, else `start_datetime`; or `updated`, see `cursor_fields.py`).
A range item that spans a cut is found by the earlier part because STAC's `datetime` parameter matches every
item whose interval overlaps the one asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from pystac_client import ItemSearch

from .api import StacApi
from .collection_groups import Conditions, any_of, collections_per_search, groups_of, items_matched
from .cursor_fields import CursorField
from .errors import MalformedItem
from .paging import Page, read_concurrently
from .rows import item_row
from .windows import Cursor, Window, loaded_at_start

PlannedWindow = tuple[str, CursorField, Window]
"""A collection, the field its cursor follows, and the window of it that a run reads."""


class CutWindow(NamedTuple):
    parts: list[Window]
    """The window's parts, one search each; none for an empty window."""
    matched: int | None
    """The items the window holds, where the API said (`numberMatched`) or they were counted."""


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
    excluded = loaded_at_start if api.filters_hold else frozenset()
    parameters = field.search_parameters(window, excluded, api.ids_bytes_at_most)
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
    if len(windows) < 2 or not api.filters_hold:
        return windows, {}
    groups = groups_of(_conditions_of(api, windows, cursors), collections_per_search(api))
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
    ids_bytes = api.ids_bytes_at_most // collections_per_search(api)
    return {
        collection: field.window_condition(window, loaded_at_start(window, cursors[collection]), ids_bytes)
        for collection, field, window in windows
    }


def bundled(
    windows: list[PlannedWindow], counted: dict[str, int | None], page_size: int, collections_at_most: int
) -> tuple[list[list[PlannedWindow]], list[PlannedWindow]]:
    """The windows counted to a page or less, in bundles that one search reads together (one cursor field, their
    items a page's worth at most, at most `collections_at_most` collections); and the other windows. The first
    load of 1,000 collections of 3 items is then 40 searches, not 1,000."""
    bundles: list[list[PlannedWindow]] = []
    filling: dict[CursorField, tuple[list[PlannedWindow], int]] = {}
    """The bundle of each cursor field that is being filled, and the items in it."""
    others = []
    for window in windows:
        count = counted.get(window[0])
        if count is None or count > page_size:
            others.append(window)
            continue
        bundle, items = filling.get(window[1], ([], 0))
        if not bundle or items + count > page_size or len(bundle) >= collections_at_most:
            bundle, items = [], 0
            bundles.append(bundle)
        bundle.append(window)
        filling[window[1]] = (bundle, items + count)
    return [bundle for bundle in bundles if len(bundle) > 1], others + [
        bundle[0] for bundle in bundles if len(bundle) == 1
    ]


def bundle_search(api: StacApi, windows: list[PlannedWindow], cursors: dict[str, Cursor], limit: int) -> ItemSearch:
    """The search for the items of a bundle's windows, in their cursor field's order where the API sorts."""
    conditions = _conditions_of(api, windows, cursors)
    order = {"sortby": windows[0][1].ascending} if api.sorts else {}
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
    if concurrency <= 1 or not api.sorts:
        return [CutWindow([window], counted.get(collection)) for collection, _, window in windows]
    to_probe = [
        index for index, (collection, _, _) in enumerate(windows) if not _one_page(counted.get(collection), page_size)
    ]
    probed = [
        _probed(api, field, window, *_probes_of(api, collection, field, window), page_size, concurrency)
        for collection, field, window in (windows[index] for index in to_probe)
    ]
    cuts = {to_probe[position]: probe for position, probe in read_concurrently(probed, concurrency)}
    return [
        CutWindow(_parts_of(window, cuts[index][0]), cuts[index][1])
        if index in cuts
        else CutWindow([window], counted.get(collection))
        for index, (collection, _, window) in enumerate(windows)
    ]


def _one_page(items: int | None, page_size: int) -> bool:
    return items is not None and items <= page_size


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
    yield _cut_points(window, low, high, parts), first.matched


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
