"""Incremental loading: the window a run asks for, and the cursor it moves, over an item timestamp (`datetime`,
or `updated`: see `cursor_fields.py`).

One cursor per collection (and per named search): the highest item timestamp loaded, and the ids of the
items at exactly that value. An incremental window is `[cursor - lag, upper bound)`; items at exactly its
start that were loaded before are skipped by id, so a boundary shared by many items loads each once. The
upper bound is fixed when the run starts and excluded, so the next run starts where this one ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..timestamps import parse_timestamp, rfc3339


@dataclass(frozen=True)
class Window:
    """A datetime range of one collection or named search; `None` ends are open."""

    start: datetime | None
    end: datetime | None
    stateless: bool
    """A backfill (`until` or an external scheduler's interval): it leaves the cursor where it was."""
    end_excluded: bool = False
    """Items at exactly `end` belong to the next window (or to the next part of a split one)."""

    def clamped(self, start: datetime | None, end: datetime | None) -> Window:
        """This window cut down to `[start, end]` (None: no limit on that side)."""
        new_end = earliest(self.end, end)
        return Window(latest(self.start, start), new_end, self.stateless, self.end_excluded and new_end == self.end)

    def split(self, points: list[datetime]) -> list[Window]:
        """This window cut at `points` (ascending, inside it) into parts that share no item: each part but the
        last excludes its end, which the next part includes as its start."""
        starts, ends = [self.start, *points], [*points, self.end]
        return [
            Window(start, end, self.stateless, end_excluded=index < len(points) or self.end_excluded)
            for index, (start, end) in enumerate(zip(starts, ends, strict=True))
        ]

    @property
    def is_empty(self) -> bool:
        return self.start is not None and self.end is not None and self.start >= self.end

    def starting_at(self, start: datetime | None) -> Window:
        return replace(self, start=start)

    def as_search_datetime(self) -> str | None:
        if self.start is None and self.end is None:
            return None
        return f"{rfc3339(self.start)}/{rfc3339(self.end)}"


def latest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else max(first, second)


def earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else min(first, second)


@dataclass
class Cursor:
    """The highest item datetime loaded so far, and which items sit exactly on it."""

    value: datetime | None = None
    ids: set[str] = field(default_factory=set)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Cursor:
        if not state or state.get("value") is None:
            return cls()
        return cls(parse_timestamp(state["value"]), set(state["ids"]))

    def to_state(self) -> dict[str, Any]:
        if self.value is None:
            return {}
        return {"value": rfc3339(self.value), "ids": sorted(self.ids)}

    def advance(self, value: datetime, item_id: str) -> None:
        if self.value is None or value > self.value:
            self.value, self.ids = value, {item_id}
        elif value == self.value:
            self.ids.add(item_id)


def loaded_at_start(window: Window, cursor: Cursor) -> set[str]:
    """The ids of the items at exactly the window's start that were loaded before: those at the cursor, where
    the window starts there."""
    return set(cursor.ids) if cursor.value is not None and window.start == cursor.value else set()


@dataclass(frozen=True)
class WindowSettings:
    since: datetime | None
    until: datetime | None
    lag: timedelta
    upper_bound: datetime
    """Fixed when the run starts: items that arrive while it runs are the next run's."""
    scheduler_interval: tuple[datetime, datetime] | None = None

    @property
    def stateless(self) -> bool:
        """The run reads a fixed window (`until`, or a scheduler's interval) and leaves the cursors alone."""
        return self.until is not None or self.scheduler_interval is not None


def plan_window(cursor: Cursor, settings: WindowSettings, not_before: datetime | None = None) -> Window:
    """The window of this run: a scheduler's interval, else `since`/`until`, else `[cursor - lag, upper bound)`.

    `not_before` is where the parts that an interrupted run left to read end: the new window starts there at
    the earliest, so that the two never overlap.
    """
    if settings.scheduler_interval is not None:  # half-open, as a scheduler's intervals follow one another
        return Window(*settings.scheduler_interval, stateless=True, end_excluded=True)
    if settings.until is not None:
        return Window(settings.since, settings.until, stateless=True)
    start = settings.since if cursor.value is None else latest(settings.since, cursor.value - settings.lag)
    return Window(latest(start, not_before), settings.upper_bound, stateless=False, end_excluded=True)


class WindowFilter:
    """Which items of a search are in its window: from `start` on, but for the ids at exactly `start` that were
    loaded before, up to `end` (inclusive unless the window excludes it)."""

    def __init__(self, window: Window, loaded_at_start: frozenset[str] = frozenset()) -> None:
        self.window = window
        self.loaded_at_start = loaded_at_start

    def admits(self, value: datetime, item_id: str) -> bool:
        start, end = self.window.start, self.window.end
        if start is not None and (value < start or (value == start and item_id in self.loaded_at_start)):
            return False
        return end is None or value < end or (value == end and not self.window.end_excluded)
