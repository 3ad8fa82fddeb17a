"""The pure part of planning a run's reading: windows cut into parts, small windows bundled into one search, the
collections asked about in groups, a CQL2 condition per collection. Nothing here asks the server;
`reading/probes.py` does, and decides with these."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from .cursor_fields import CursorField
from .windows import Window

COLLECTIONS_PER_SEARCH = {"POST": 25, "GET": 10}
"""Collections one search asks about, by how searches are sent. pgstac's time per search grows faster than the
number of collections in it (1,000 collections with nothing new, measured: 100 a search 290 ms, 25 a search
37 ms, all 1,000 in one search over 7 minutes and 16 GB of server memory). A GET carries them in its query
string: 25 collections' windows take 8.8 KB of it, more than nginx's default 8 KB request line; 10 take 3.5 KB."""


def collections_per_search(search_method: str) -> int:
    return COLLECTIONS_PER_SEARCH[search_method]


Conditions = dict[str, dict[str, Any]]
"""A CQL2 JSON condition per collection id."""


def groups_of(conditions: Conditions, size: int) -> list[Conditions]:
    """`conditions` in groups of `size` collections, a search's worth each."""
    collections = list(conditions)
    return [
        {collection: conditions[collection] for collection in collections[start : start + size]}
        for start in range(0, len(collections), size)
    ]


def any_of(conditions: Conditions) -> dict[str, Any]:
    """The CQL2 JSON condition that an item is of one of the collections and meets that collection's condition."""
    of_each = [
        {"op": "and", "args": [{"op": "=", "args": [{"property": "collection"}, collection]}, condition]}
        for collection, condition in conditions.items()
    ]
    return {"op": "or", "args": of_each} if len(of_each) > 1 else of_each[0]


PlannedWindow = tuple[str, CursorField, Window]
"""A collection, the field its cursor follows, and the window of it that a run reads."""


class CutWindow(NamedTuple):
    parts: list[Window]
    """The window's parts, one search each; none for an empty window."""
    matched: int | None
    """The items the window holds, where the API said (`numberMatched`) or they were counted."""


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


def one_page(items: int | None, page_size: int) -> bool:
    return items is not None and items <= page_size


def parts_of(window: Window, cut_points: list[datetime] | None) -> list[Window]:
    return [] if cut_points is None else window.split(cut_points)


def cut_points(window: Window, low: datetime | None, high: datetime | None, parts: int) -> list[datetime]:
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
