"""Late arrivals in the collections that load by `datetime`: items acquired before the collection's window but
added or edited since its last run, which say so in their `updated`.

A collection loads by `datetime` where some of its items lacked `updated` at its first load (`cursor_fields.py`).
Where the API filters on `updated`, the checkpoint of such a collection keeps a second cursor, `late`: the newest
`updated` among the items it loaded, below each run's upper bound. Every later run also reads, sorted by
`updated`, the items whose `updated` is in `[late - lag, upper bound)` and that were acquired before the
collection's own window (which reads the others). That late read leaves the `datetime` cursor alone; until it
ends, the checkpoint keeps how far it got instead of the newest `updated` loaded, so that a crash loses nothing.

Over several collections, one search per `COLLECTIONS_PER_SEARCH` collections finds those that may have late
arrivals (one range of `updated` for the group, which pgstac answers from its index), and only those are read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .api import StacApi
from .checkpoints import Checkpoint, Part, parts_end, started_at_cursor
from .collection_groups import collections_per_search, items_meeting
from .cursor_fields import DATETIME, UPDATED_NAME, CursorField, api_filters_on_updated
from .paging import read_concurrently
from .windows import Cursor, Window, WindowSettings, plan_window

LateRead = tuple[CursorField, Part]
"""The field of a collection's late read (`updated`, acquired before its window) and the part it reads."""


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
        return _further(self.found[key], unread.read_to)


def _further(first: Cursor, second: Cursor) -> Cursor:
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
        key: (window, acquired_before)
        for key in tracked
        if (acquired_before := _window_start(checkpoints[key], settings)) is not None
        and not (window := plan_window(found[key], dataclasses.replace(settings, since=None))).is_empty
    }
    if len(windows) > 1:
        windows = {key: windows[key] for key in _maybe_late(api, windows, page_size, concurrency)}
    reads = {
        key: (CursorField(UPDATED_NAME, settings.since, acquired_before), started_at_cursor(window, found[key]))
        for key, (window, acquired_before) in windows.items()
    }
    return late, reads


def _window_start(checkpoint: Checkpoint, settings: WindowSettings) -> datetime | None:
    """Where a collection's reading by `datetime` starts in this run (None: from the first item; also at its first
    load, when it has read nothing yet): the earliest of the parts an interrupted run left, from where they
    were read to, and the new window."""
    if checkpoint.cursor.value is None:
        return None
    starts = [part.window_filter().window.start for part in checkpoint.parts]
    starts.append(plan_window(checkpoint.cursor, settings, parts_end(checkpoint.parts)).start)
    return None if None in starts else min(start for start in starts if start is not None)


def _maybe_late(
    api: StacApi, windows: dict[str, tuple[Window, datetime]], page_size: int, concurrency: int
) -> set[str]:
    """The collections that hold an item in the `updated` range of the group they are asked about with, acquired
    before the latest of its windows: a search per `COLLECTIONS_PER_SEARCH` collections, `concurrency` at once."""
    keys = list(windows)
    size = collections_per_search(api)
    groups = [keys[start : start + size] for start in range(0, len(keys), size)]
    searches = [items_meeting(api, group, _group_condition(group, windows), page_size) for group in groups]
    return {key for _, matched in read_concurrently(searches, concurrency) for key in matched}


def _group_condition(group: list[str], windows: dict[str, tuple[Window, datetime]]) -> dict[str, Any]:
    """The condition every late arrival of the group's collections meets: its `updated` from the earliest start of
    their late windows to the run's upper bound, acquired before the latest of their windows' starts."""
    starts = [windows[key][0].start for key in group]
    window = dataclasses.replace(windows[group[0]][0], start=None if None in starts else min(starts))
    field = CursorField(UPDATED_NAME, acquired_before=max(windows[key][1] for key in group))
    return field.window_condition(window)
