"""Late arrivals in the collections that load by `datetime`: items acquired before the collection's window but
added or edited since its last run, which say so in their `updated`.

A collection loads by `datetime` where some of its items lacked `updated` at its first load
(`planning/cursor_fields.py`).
Where the API filters on `updated`, the checkpoint of such a collection keeps a second cursor, `late`: the newest
`updated` among the items it loaded, below each run's upper bound. Every later run also reads, sorted by
`updated`, the items whose `updated` is in `[late - lag, upper bound)`, acquired by the start of the collection's
own window, that none of the collection's own reads in the run admits (`OwnReads`: its new window, whose start
leaves out the items loaded there, and the parts an interrupted run left). That late read leaves the `datetime`
cursor alone; until it ends, the checkpoint keeps how far it got instead of the newest `updated` loaded, so that
a crash loses nothing.

Over several collections, one search per `COLLECTIONS_PER_SEARCH` collections finds those that may have late
arrivals (`_group_condition`), and only those are read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..planning import (
    DATETIME,
    UPDATED_NAME,
    Checkpoint,
    Cursor,
    CursorField,
    Part,
    Window,
    WindowFilter,
    WindowSettings,
    any_of,
    collections_per_search,
    item_cursor,
    loaded_at_start,
    parts_end,
    plan_window,
    started_at_cursor,
)
from ..server import StacApi, read_concurrently
from .probes import api_filters_on_updated, items_meeting


@dataclass(frozen=True)
class OwnReads:
    """What a collection's own reads by `datetime` admit in this run: its new window (the items loaded at exactly
    its start left out) and the parts an interrupted run left. Its late read loads only the items acquired from
    `since` to the new window's start that none of them admits, so that each is read once, by one or the other,
    wherever an interrupted run left its parts."""

    since: datetime | None
    window_start: datetime
    new_window: WindowFilter
    resumed: tuple[WindowFilter, ...]

    @property
    def resumed_ranges(self) -> tuple[tuple[datetime | None, datetime | None], ...]:
        """The acquisition times (both ends excluded) that the parts an interrupted run left read whole, which the
        late read leaves out on the server: after a kill in a first load, they may hold most of the collection."""
        return tuple((left.window.start, left.window.end) for left in self.resumed)

    def leave_late(self, row: dict[str, Any]) -> bool:
        """Whether the item, acquired from `since` to the new window's start, is one that none of the reads
        admits."""
        acquired = item_cursor(row)
        if (self.since is not None and acquired < self.since) or acquired > self.window_start:
            return False
        return not any(read.admits(acquired, row["id"]) for read in (self.new_window, *self.resumed))


@dataclass(frozen=True)
class LateRead:
    """A collection's late read: over `updated`, of the items acquired by the start of its window, from its `late`
    cursor on."""

    cursor_field: CursorField
    part: Part
    own_reads: OwnReads

    def admits(self, row: dict[str, Any]) -> bool:
        """Whether the item is the late read's to load (`OwnReads.leave_late`)."""
        return self.own_reads.leave_late(row)


@dataclass
class LateArrivals:
    """Where the late arrivals of each collection that loads by `datetime` stand in this run."""

    upper_bound: datetime
    found: dict[str, Cursor]
    """Each collection's `late` cursor as the run found it."""
    loaded: dict[str, Cursor]
    """Each collection's newest `updated` below the upper bound, moved over every item loaded."""

    def record(self, key: str, row: dict[str, Any]) -> None:
        updated = row["updated"]
        if key in self.loaded and updated is not None and updated < self.upper_bound:
            self.loaded[key].advance(updated, row["id"])

    def to_save(self, key: str, unread: Part | None) -> Cursor | None:
        """The `late` cursor a checkpoint keeps (None for a collection that keeps none): the newest `updated`
        loaded; while the collection's late read is `unread`, how far that read got, where it got further than
        the cursor it started from (items it has not read yet may lie between there and the newest loaded); as
        the run found it where this run does not track it (the API could not filter on `updated` this time)."""
        if key not in self.loaded:
            return self.found.get(key)
        if unread is None:
            return self.loaded[key]
        return _later_of(self.found[key], unread.read_to)


def _later_of(first: Cursor, second: Cursor) -> Cursor:
    if first.value is None or (second.value is not None and second.value > first.value):
        return second
    if second.value == first.value:
        return Cursor(first.value, first.ids | second.ids)
    return first


def late_arrivals(
    api: StacApi,
    checkpoints: dict[str, Checkpoint],
    fields: dict[str, CursorField],
    settings: WindowSettings,
    page_size: int,
    concurrency: int,
) -> tuple[LateArrivals, dict[str, LateRead]]:
    """Where each collection that loads by `datetime` stands with its late arrivals, and the late reads of this
    run: one for each collection loaded before that may have late arrivals. None in a backfill, which reads a
    window of acquisition time, or where the API cannot filter on `updated`."""
    tracked = [key for key, field in fields.items() if field == DATETIME]
    if settings.stateless or not tracked or not api_filters_on_updated(api):
        kept = {key: checkpoint.late for key, checkpoint in checkpoints.items()}
        return LateArrivals(settings.upper_bound, kept, {}), {}
    found = {key: checkpoints[key].late for key in tracked}
    loaded = {key: dataclasses.replace(cursor, ids=set(cursor.ids)) for key, cursor in found.items()}
    late = LateArrivals(settings.upper_bound, found, loaded)
    windows = {
        key: (window, own_reads)
        for key in tracked
        if (own_reads := _own_reads(checkpoints[key], settings)) is not None
        and not (window := plan_window(found[key], dataclasses.replace(settings, since=None))).is_empty
    }
    if len(windows) > 1:
        windows = {key: windows[key] for key in _maybe_late(api, windows, found, page_size, concurrency)}
    reads = {
        key: LateRead(
            CursorField(UPDATED_NAME, settings.since, own_reads.window_start, own_reads.resumed_ranges),
            started_at_cursor(window, found[key]),
            own_reads,
        )
        for key, (window, own_reads) in windows.items()
    }
    return late, reads


def _own_reads(checkpoint: Checkpoint, settings: WindowSettings) -> OwnReads | None:
    """What the collection's reads by `datetime` admit in this run; None at its first load, which reads from the
    first item."""
    if checkpoint.cursor.value is None:
        return None
    window = plan_window(checkpoint.cursor, settings, parts_end(checkpoint.parts))
    assert window.start is not None, "a window after a cursor starts somewhere"
    new_window = WindowFilter(window, frozenset(loaded_at_start(window, checkpoint.cursor)))
    resumed = tuple(part.window_filter() for part in checkpoint.parts)
    return OwnReads(settings.since, window.start, new_window, resumed)


def _maybe_late(
    api: StacApi,
    windows: dict[str, tuple[Window, OwnReads]],
    found: dict[str, Cursor],
    page_size: int,
    concurrency: int,
) -> set[str]:
    """The collections that may hold late arrivals: a search per `COLLECTIONS_PER_SEARCH` collections,
    `concurrency` at once."""
    keys = list(windows)
    size = collections_per_search(api.capabilities.search_method)
    groups = [keys[start : start + size] for start in range(0, len(keys), size)]
    ids_bytes = api.capabilities.ids_bytes_at_most // size
    searches = [
        items_meeting(api, group, _group_condition(group, windows, found, ids_bytes), page_size) for group in groups
    ]
    return {key for _, matched in read_concurrently(searches, concurrency) for key in matched}


def _group_condition(
    group: list[str], windows: dict[str, tuple[Window, OwnReads]], found: dict[str, Cursor], ids_bytes: int
) -> dict[str, Any]:
    """The condition a late arrival of one of the group's collections meets: its `updated` in the range that
    holds all their late windows, acquired by the latest of their windows' starts (which pgstac answers from
    its index), and then in its own collection's late window, less the items loaded at exactly its start where
    their ids take at most `ids_bytes` (with no lag, the newest loaded: they would make every run read every
    collection again)."""
    starts = [windows[key][0].start for key in group]
    window = dataclasses.replace(windows[group[0]][0], start=None if None in starts else min(starts))
    shared = CursorField(UPDATED_NAME, acquired_by=max(windows[key][1].window_start for key in group))
    own = {key: _late_window_condition(*windows[key], found[key], ids_bytes) for key in group}
    return {"op": "and", "args": [shared.window_condition(window), any_of(own)]}


def _late_window_condition(window: Window, own_reads: OwnReads, late: Cursor, ids_bytes: int) -> dict[str, Any]:
    field = CursorField(UPDATED_NAME, acquired_outside=own_reads.resumed_ranges)
    return field.window_condition(window, loaded_at_start(window, late), ids_bytes)
