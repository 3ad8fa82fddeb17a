"""Reading a resource's items across its load packages.

A reading plans the parts of a resource's windows once per process (the parts an interrupted run left, then
each key's new window, cut for concurrent searches), pages their searches up to `concurrency` at once, and
hands out the items a load package at a time. Between packages of the same process its searches keep
running, so the next package continues where the last one stopped. After every package the reading's
checkpoint goes into the resource's state, which dlt commits with the package: the cursors and each part's
`read_to` cover exactly the items of the packages so far.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pystac_client import ItemSearch

from ..planning import (
    DATETIME,
    Checkpoint,
    Cursor,
    CursorField,
    CutWindow,
    Part,
    PlannedWindow,
    Window,
    WindowFilter,
    WindowSettings,
    backfill_state,
    bundled,
    collections_per_search,
    parts_end,
    plan_window,
    saved_backfill,
    saved_checkpoints,
    saved_field,
    started_at_cursor,
)
from ..server import Page, StacApi, read_concurrently
from ..tables import AdmittedRow, ItemTables, dlt_items, page_rows, rejected_item_row
from .late_arrivals import LateArrivals, LateRead, late_arrivals
from .probes import bundle_search, chosen_fields, collection_search, cut_windows, windows_with_items
from .searches import NamedSearch


@dataclass
class PartInProgress:
    """One part being read in this process: its search, and which of its items are still to load."""

    key: str
    """The collection id (`items`) or the search's name whose cursor this part moves."""
    collection: str | None
    """The collection of the part's items, where one search reads one collection (for rejected items)."""
    cursor_field: CursorField
    part: Part
    search: ItemSearch
    sorted: bool
    """The server returns the items by cursor value and id, so `read_to` tells how far the part was read."""
    late_read: LateRead | None = None
    """Of a late read (`late_arrivals.py`), which loads none of the items its collection's own reads admit, and
    moves its `read_to`, not the key's cursor."""
    window_filter: WindowFilter = field(init=False)
    finished: bool = False

    def __post_init__(self) -> None:
        self.window_filter = self.part.window_filter()

    @property
    def moves_cursor(self) -> bool:
        return self.late_read is None

    def admits(self, row: dict[str, Any], value: datetime) -> bool:
        """Whether the item (`value` its cursor value) is this part's to load."""
        admitted = self.window_filter.admits(value, row["id"])
        return admitted and (self.late_read is None or self.late_read.admits(row))


Shape = Callable[[list[AdmittedRow], list[dict[str, Any]]], tuple[list[Any], int]]
"""What a reading yields for a page: its admitted rows and its malformed items as dlt items, and their size."""


NOTED_KEYS = 3
"""Keys a progress note names at most (a bundle's page holds items of up to 25 collections)."""


@dataclass(frozen=True)
class PackageLimits:
    """When a resource's load package is full: at `items` rows, or at `megabytes` of Arrow data (large items such
    as Sentinel-2's reach that first), whichever comes first; the page that reaches it ends the package."""

    items: int
    megabytes: float


class Reading:
    """The parts of one resource's windows, read concurrently and handed out a load package at a time."""

    def __init__(
        self,
        api: StacApi,
        reads: list[PartInProgress],
        cursors: dict[str, Cursor],
        cursor_fields: dict[str, CursorField],
        backfill: Window | None,
        concurrency: int,
        max_items: int | None = None,
        shape: Shape | None = None,
        bundles: list[list[PartInProgress]] | None = None,
        table_name: str = "items",
        late: LateArrivals | None = None,
    ) -> None:
        self.streams = [[read] for read in reads] + (bundles or [])
        """The reads that each search serves: one, or a bundle of small windows of several collections."""
        self.reads = [read for stream in self.streams for read in stream]
        self.cursors = cursors
        """Each key's cursor, moved over every item handed out; left alone by a backfill."""
        self.cursor_fields = cursor_fields
        """What each key's cursor follows."""
        self.backfill = backfill
        """The stateless window read, if this is a backfill."""
        self.late = late
        """Where the late arrivals of the collections that load by `datetime` stand, moved over every item."""
        self.max_items = max_items
        self.taken = 0
        self.expected_items: int | None = None
        """How many items its windows hold, where that is known (`numberMatched`), for a progress display."""
        self.expected_by_key: dict[str, int] = {}
        """How many items each key's windows hold, where that is known."""
        self.loaded_by_key: Counter[str] = Counter()
        """Items handed out so far, by key."""
        self.last_keys: list[str] = []
        """The keys of the last page's items (of a bundle's page, those it holds items of)."""
        self.packages = 0
        """Load packages handed out so far."""
        self.pages_read = self.items_read = 0
        """What this load package's searches read from the API: pages, and the items on them, loaded or not (items
        at the cursor that were loaded before, items outside the window that the server matched)."""
        self.tables = ItemTables(table_name)
        self.shape: Shape = shape or (lambda admitted, rejected: dlt_items(admitted, rejected, self.tables))
        """The page's rows as dlt items: by default each page's new items as an Arrow table for the resource's
        table, its malformed items to `rejected_items`."""
        self._pages = read_concurrently([api.search_pages(stream[0].search) for stream in self.streams], concurrency)

    @property
    def finished(self) -> bool:
        return all(read.finished for read in self.reads)

    def next_package(self, limits: PackageLimits) -> Iterator[Any]:
        """Yields the items of the next load package, a page at a time (as `shape` makes them), until it is full
        (`limits`) or every part is read.

        The cursors and the sorted parts' `read_to` move here, over exactly the items yielded.
        """
        rows, size = 0, 0
        self.pages_read = self.items_read = 0
        self.packages += 1
        for index, page in self._pages:
            stream = self.streams[index]
            self.pages_read += 1
            self.items_read += len(page.entries)
            admitted, rejected = [], []
            of_each = _entries_of_each(stream, page, rejected)
            self.last_keys = [read.key for read, entries in of_each if entries]
            for read, entries in of_each:
                kept, malformed = page_rows(entries, page.url, read.cursor_field.value_of, read.admits, read.collection)
                kept = self._within_max_items(kept)
                self.loaded_by_key[read.key] += len(kept)
                for row, value in kept:
                    self._record(read, row, value)
                admitted += kept
                rejected += malformed
            items, nbytes = self.shape(admitted, rejected)
            yield from items
            for read in stream:
                read.finished = page.last
            rows, size = rows + len(admitted) + len(rejected), size + nbytes
            if self.max_items is not None and self.taken >= self.max_items:
                self.stop()
            if self.finished or rows >= limits.items or size >= limits.megabytes * 1e6:
                return

    def _within_max_items(self, admitted: list[AdmittedRow]) -> list[AdmittedRow]:
        if self.max_items is None:
            return admitted
        admitted = admitted[: self.max_items - self.taken]
        self.taken += len(admitted)
        return admitted

    def progress_note(self) -> str:
        """Where the keys of the last page stand, for a progress display: `naip 600 of 1,000` (the total where it
        is known), at most `NOTED_KEYS` of them."""
        notes = [
            f"{key} {loaded:,} of {expected:,}"
            if (expected := self.expected_by_key.get(key)) and (loaded := self.loaded_by_key[key]) <= expected
            else f"{key} {self.loaded_by_key[key]:,}"
            for key in self.last_keys[:NOTED_KEYS]
        ]
        more = len(self.last_keys) - NOTED_KEYS
        return ", ".join(notes) + (f" and {more} more" if more > 0 else "")

    def _record(self, read: PartInProgress, row: dict[str, Any], value: datetime) -> None:
        if self.backfill is None and read.moves_cursor:
            self.cursors[read.key].advance(value, row["id"])
        if self.late is not None:
            self.late.record(read.key, row)
        if read.sorted:
            read.part.read_to.advance(value, row["id"])

    def stop(self) -> None:
        """Ends the reading: its searches stop, and its parts count as read."""
        self._pages.close()
        for read in self.reads:
            read.finished = True

    def unread_parts(self, key: str, moving_cursor: bool = True) -> list[Part]:
        return [
            read.part
            for read in self.reads
            if read.key == key and read.moves_cursor == moving_cursor and not read.finished
        ]

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Writes where the reading stands into the resource's state: each key's cursor and unread parts, or the
        unread parts of the backfill (none once it is read to its end)."""
        if self.backfill is not None:
            unread = {key: parts for key in self.cursors if (parts := self.unread_parts(key))}
            if unread:
                state["backfill"] = backfill_state(self.backfill, unread)
            else:
                state.pop("backfill", None)
            return
        saved = state.setdefault("cursors", {})
        for key, cursor in self.cursors.items():
            kept_field = self.cursor_fields[key].checkpoint_name
            late_read = next(iter(self.unread_parts(key, moving_cursor=False)), None)
            late = (self.late.to_save(key, late_read) if self.late else None) or Cursor()
            checkpoint = Checkpoint(cursor, self.unread_parts(key), kept_field, late, late_read is not None)
            if checkpoint := checkpoint.to_state():
                saved[key] = checkpoint
            else:  # nothing loaded yet, and nothing left to read: a window that was empty
                saved.pop(key, None)


def _entries_of_each(
    stream: list[PartInProgress], page: Page, rejected: list[dict[str, Any]]
) -> list[tuple[PartInProgress, list[Any]]]:
    """The page's entries of each read that its search serves; a bundle's entries by their collection, and those
    of a collection it did not ask for into `rejected`."""
    if len(stream) == 1:
        return [(stream[0], page.entries)]
    by_collection: dict[str, list[Any]] = {str(read.collection): [] for read in stream}
    for entry in page.entries:
        collection = entry.get("collection") if isinstance(entry, dict) else None
        if collection in by_collection:
            by_collection[collection].append(entry)
        else:
            reason = f"a search for collections {sorted(by_collection)} returned an item of {collection!r}"
            rejected.append(rejected_item_row(entry, reason, page.url, None))
    return [(read, by_collection[str(read.collection)]) for read in stream]


class ReadingAcrossPackages:
    """A resource's reading in this process, kept from one load package to the next.

    It goes on only from the state it saved itself: when the resource's state is not what the last package
    saved (the first package of a process, a refresh, a state restored from the destination, or a package
    that did not complete), a new reading is planned from that state.
    """

    def __init__(self, plan: Callable[[dict[str, Any]], Reading]) -> None:
        self._plan = plan
        self._reading: Reading | None = None
        self._saved: dict[str, Any] | None = None

    def for_package(self, state: dict[str, Any]) -> Reading:
        if self._reading is None or state != self._saved:
            self.abandon()
            self._reading = self._plan(state)
        return self._reading

    def saved(self, state: dict[str, Any]) -> None:
        self._saved = copy.deepcopy(state)

    def next_package(
        self, state: dict[str, Any], limits: PackageLimits, on_page: Callable[[Reading], None] | None = None
    ) -> Generator[Any, None, Reading]:
        """Yields the next load package of the resource whose `state` this is, a page at a time (`on_page` called
        after each), then writes into `state` where the reading stands, for dlt to commit with the package; returns
        the reading. Planned from `state` where it is not what the last package saved."""
        reading = self.for_package(state)
        with self.abandoned_on_error():
            for page_items in reading.next_package(limits):  # moves the cursors over the items it yields
                yield page_items
                if on_page is not None:
                    on_page(reading)
        reading.save_checkpoint(state)
        self.saved(state)
        return reading

    @contextmanager
    def abandoned_on_error(self) -> Iterator[None]:
        """A package that does not end as planned (an error, or dlt closing the resource early) leaves a reading
        that is ahead of what was saved: the next package plans anew."""
        try:
            yield
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        if self._reading is not None:
            self._reading.stop()
        self._reading, self._saved = None, None


def _planned_parts(
    state: dict[str, Any],
    checkpoints: dict[str, Checkpoint],
    settings: WindowSettings,
    fields: dict[str, CursorField],
    window_of: Callable[[Window], Window],
) -> tuple[dict[str, Cursor], dict[str, list[Part]], dict[str, Window], Window | None]:
    """Each key's cursor, the parts an interrupted run left to read, the new window to read after them, and the
    backfill window if the run is a backfill. `window_of` cuts the planned window to the key's own range."""
    cursors = {key: checkpoint.cursor for key, checkpoint in checkpoints.items()}
    if settings.stateless:
        backfill = window_of(plan_window(Cursor(), settings))
        resumed = saved_backfill(state, backfill)
        if resumed is not None:
            return cursors, resumed, {}, backfill
        return cursors, {}, dict.fromkeys(checkpoints, backfill), backfill
    resumed = {key: checkpoint.parts for key, checkpoint in checkpoints.items()}
    windows = {
        key: window_of(
            plan_window(checkpoint.cursor, fields[key].window_settings(settings), parts_end(checkpoint.parts))
        )
        for key, checkpoint in checkpoints.items()
    }
    return cursors, resumed, {key: window for key, window in windows.items() if not window.is_empty}, None


def items_reading(
    api: StacApi,
    collections: list[str],
    state: dict[str, Any],
    settings: WindowSettings,
    page_size: int,
    concurrency: int,
    shape: Shape | None = None,
) -> Reading:
    """The reading of the `items` resource: per collection, the parts an interrupted run left, then its new
    window cut into parts by the probes, over the collection's cursor field (chosen at its first load). Windows
    that the many-collection search counted to a page or less are read in bundles, a search for several. A
    collection that loads by `datetime` also reads its late arrivals (`late_arrivals.py`)."""
    checkpoints = saved_checkpoints(state, collections)
    fields = _cursor_fields(api, checkpoints, settings, page_size, concurrency)
    cursors, resumed, windows, backfill = _planned_parts(state, checkpoints, settings, fields, lambda window: window)
    planned = [(collection, fields[collection], window) for collection, window in windows.items()]
    planned, counted = windows_with_items(api, planned, cursors, page_size, concurrency)
    bundles, planned = bundled(planned, counted, page_size, collections_per_search(api.capabilities.search_method))
    cut = cut_windows(api, planned, page_size, concurrency, counted)
    cuts = dict(zip([collection for collection, _, _ in planned], cut, strict=True))
    sorted_ = api.capabilities.sorts
    reads = []
    for collection in collections:
        new_windows = cuts[collection].parts if collection in cuts else []
        parts = resumed.get(collection, []) + [started_at_cursor(window, cursors[collection]) for window in new_windows]
        cursor_field = fields[collection]
        reads += [
            PartInProgress(
                collection,
                collection,
                cursor_field,
                part,
                _part_search(api, collection, cursor_field, part, page_size),
                sorted_,
            )
            for part in parts
        ]
    bundle_reads = [
        [
            PartInProgress(collection, collection, of, started_at_cursor(window, cursors[collection]), search, sorted_)
            for collection, of, window in bundle
        ]
        for bundle, search in ((bundle, bundle_search(api, bundle, cursors, page_size)) for bundle in bundles)
    ]
    late, late_reads = late_arrivals(api, checkpoints, fields, settings, page_size, concurrency)
    reads += [
        PartInProgress(
            collection,
            collection,
            late_read.cursor_field,
            late_read.part,
            _part_search(api, collection, late_read.cursor_field, late_read.part, page_size),
            sorted=True,
            late_read=late_read,
        )
        for collection, late_read in late_reads.items()
    ]
    reading = Reading(api, reads, cursors, fields, backfill, concurrency, shape=shape, bundles=bundle_reads, late=late)
    matched = _matched_by_key(cuts, bundles, counted)
    known = {key: count for key, count in matched.items() if count is not None and not resumed.get(key)}
    reading.expected_by_key = known
    if len(known) == len(matched) and not any(resumed.values()):  # no parts an interrupted run left are read
        reading.expected_items = sum(known.values())
    return reading


def _matched_by_key(
    cuts: dict[str, CutWindow], bundles: list[list[PlannedWindow]], counted: dict[str, int | None]
) -> dict[str, int | None]:
    """How many items each collection's new window holds, as the API said or the many-collection search counted
    them (late arrivals aside); None where that is not known."""
    matched = {collection: cut.matched for collection, cut in cuts.items()}
    return matched | {collection: counted.get(collection) for bundle in bundles for collection, _, _ in bundle}


def _part_search(api: StacApi, collection: str, field: CursorField, part: Part, page_size: int) -> ItemSearch:
    """The search for what is left of `part`: its window from where it was read to, without the items loaded at
    exactly that point."""
    left = part.window_filter()
    return collection_search(api, collection, field, left.window, page_size, loaded_at_start=left.loaded_at_start)


def _cursor_fields(
    api: StacApi, checkpoints: dict[str, Checkpoint], settings: WindowSettings, page_size: int, concurrency: int
) -> dict[str, CursorField]:
    """What each collection's cursor follows: what its checkpoint says, or for a first load what the API and the
    collection's items allow. A backfill's window is one of acquisition time: it reads by `datetime`."""
    if settings.stateless:
        return dict.fromkeys(checkpoints, DATETIME)
    fields = {key: saved_field(checkpoint.cursor_field, settings.since) for key, checkpoint in checkpoints.items()}
    new = [key for key, checkpoint in checkpoints.items() if checkpoint.is_new]
    return {**fields, **chosen_fields(api, new, settings.since, page_size, concurrency)}


def search_reading(api: StacApi, search: NamedSearch, state: dict[str, Any], settings: WindowSettings) -> Reading:
    """The reading of a named search: one part, the one an interrupted run left or the new window."""
    checkpoints = saved_checkpoints(state, [search.name])
    fields = {search.name: DATETIME}
    cursors, resumed, windows, backfill = _planned_parts(state, checkpoints, settings, fields, search.window)
    cursor = cursors[search.name]
    parts = resumed.get(search.name, []) + [started_at_cursor(window, cursor) for window in windows.values()]
    sorted_ = api.capabilities.sorts and "sortby" not in search.parameters
    reads = [
        PartInProgress(search.name, None, DATETIME, part, search.request(api, part.window_filter().window), sorted_)
        for part in parts
    ]
    return Reading(
        api, reads, cursors, fields, backfill, concurrency=1, max_items=search.max_items, table_name=search.table_name
    )
