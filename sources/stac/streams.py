"""Item streams: the searches one run pages, several at once.

Each collection's window is cut by datetime into parts that share no item (`Window.split`), so that one
large collection is paged by several streams too. Two probes with `limit=1` find where the window's items
begin and end and how many there are (`numberMatched`); the cut points divide that span evenly, and a
window the probe finds empty is not searched. Probes need the Sort extension; without it, or with
`concurrency` 1, each collection is one stream. The probes only place the cuts: the parts always cover
the whole window, and each item is admitted by exactly the part that holds its cursor value (`datetime`,
else `start_datetime`). A range item that spans a cut is found by the earlier part because STAC's
`datetime` parameter matches every item whose interval overlaps the one asked for.

The searches are built in the calling thread (pystac-client's parameter checks swap process-wide warning
filters); only the requests run in threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pystac_client import ItemSearch
from pystac_client.conformance import ConformanceClasses

from sources.stac.api import StacApi
from sources.stac.errors import MalformedItem
from sources.stac.paging import Page, read_concurrently
from sources.stac.rows import item_cursor, item_row
from sources.stac.windows import Cursor, Window, WindowFilter

DESCENDING_BY_DATETIME_THEN_ID = ["-properties.datetime", "-id"]


@dataclass(frozen=True)
class ItemStream:
    """One search to page, and which of its items are new."""

    search: ItemSearch
    window_filter: WindowFilter
    collection: str | None


@dataclass(frozen=True)
class CollectionWindow:
    collection: str
    window: Window
    cursor: Cursor


def collection_streams(
    api: StacApi, windows: list[CollectionWindow], page_size: int, concurrency: int
) -> list[ItemStream]:
    """The streams of every collection's window, in the collections' order; the probes run `concurrency` at once."""
    if concurrency <= 1 or not api.conforms_to(ConformanceClasses.SORT):
        return [stream for planned in windows for stream in _streams_of(api, planned, [], page_size)]
    probed = [_probed(api, planned.window, *_probes_of(api, planned), page_size, concurrency) for planned in windows]
    cuts = dict(read_concurrently(probed, concurrency))
    streams: list[ItemStream] = []
    for index, planned in enumerate(windows):
        points = cuts[index]
        if points is not None:
            streams += _streams_of(api, planned, points, page_size)
    return streams


def paged_streams(api: StacApi, streams: list[ItemStream], concurrency: int) -> Iterator[tuple[ItemStream, Page]]:
    """Every page of every stream, with its stream; up to `concurrency` streams are paged at once."""
    pages = [api.search_pages(stream.search) for stream in streams]
    for index, page in read_concurrently(pages, concurrency):
        yield streams[index], page


def _probes_of(api: StacApi, planned: CollectionWindow) -> tuple[ItemSearch, ItemSearch]:
    """Searches for the window's earliest and its latest item."""
    return (
        _search(api, planned, planned.window, 1),
        _search(api, planned, planned.window, 1, DESCENDING_BY_DATETIME_THEN_ID),
    )


def _probed(
    api: StacApi, window: Window, earliest: ItemSearch, latest: ItemSearch, page_size: int, parts: int
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
    yield _cut_points(window, _cursor_of(first), _cursor_of(api.first_page(latest)), parts)


def _streams_of(api: StacApi, planned: CollectionWindow, points: list[datetime], page_size: int) -> list[ItemStream]:
    return [
        ItemStream(_search(api, planned, part, page_size), WindowFilter(part, planned.cursor), planned.collection)
        for part in planned.window.split(points)
    ]


def _search(
    api: StacApi, planned: CollectionWindow, window: Window, limit: int, sortby: list[str] | None = None
) -> ItemSearch:
    order = {"sortby": sortby} if sortby else {}
    return api.search(collections=[planned.collection], datetime=window.as_search_datetime(), limit=limit, **order)


def _cursor_of(page: Page) -> datetime | None:
    try:
        return item_cursor(item_row(page.entries[0])) if page.entries else None
    except MalformedItem:  # the stream that reads it rejects it; here it only cannot help to cut
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
