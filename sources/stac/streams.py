"""Where a collection's window is cut, so that several searches read one large collection at once.

Two probes with `limit=1` find where the window's items begin and end and how many there are
(`numberMatched`); the cut points divide that span evenly, and a window the probe finds empty is not
searched. Probes need the Sort extension; without it, or with `concurrency` 1, each window is one part. The
probes only place the cuts: the parts always cover the whole window, and each item is admitted by exactly
the part that holds its cursor value (`datetime`, else `start_datetime`; or `updated`, see `cursor_fields.py`).
A range item that spans a cut is found by the earlier part because STAC's `datetime` parameter matches every
item whose interval overlaps the one asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime

from pystac_client import ItemSearch
from pystac_client.conformance import ConformanceClasses

from .api import StacApi
from .cursor_fields import CursorField
from .errors import MalformedItem
from .paging import Page, read_concurrently
from .rows import item_row
from .windows import Window


def collection_search(
    api: StacApi, collection: str, field: CursorField, window: Window, limit: int, descending: bool = False
) -> ItemSearch:
    """The search for `window`'s items of `collection`, in `field`'s order (or its reverse)."""
    parameters = field.search_parameters(window)
    if descending:
        parameters["sortby"] = field.descending
    return api.search(collections=[collection], limit=limit, **parameters)


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
