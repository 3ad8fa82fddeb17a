"""Incremental loading on item datetime: the window a run asks for, and the cursor it moves.

One cursor per collection (and per named search), kept in the resource's dlt state as
`{"value": <RFC 3339>, "ids": [ids of the items at exactly that value]}`. The window pushed to the
server is `[cursor - lag, upper bound]` with both ends inclusive; items at exactly the cursor that
were loaded before are skipped by id, so a boundary shared by many items loads each once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sources.stac.rows import parse_timestamp


@dataclass(frozen=True)
class Window:
    """The datetime range of one run over one collection; `None` ends are open."""

    start: datetime | None
    end: datetime | None
    stateless: bool
    """A backfill (`until` or an external scheduler's interval): it leaves the cursor where it was."""
    end_excluded: bool = False
    """A part of a split window: items at exactly `end` belong to the next part."""

    def clamped(self, start: datetime | None, end: datetime | None) -> Window:
        """This window cut down to `[start, end]` (None: no limit on that side)."""
        new_end = _earliest(self.end, end)
        return Window(_latest(self.start, start), new_end, self.stateless, self.end_excluded and new_end == self.end)

    def split(self, points: list[datetime]) -> list[Window]:
        """This window cut at `points` (ascending, inside it) into parts that share no item: each part but the
        last excludes its end, which the next part includes as its start."""
        starts, ends = [self.start, *points], [*points, self.end]
        return [
            Window(start, end, self.stateless, end_excluded=index < len(points) or self.end_excluded)
            for index, (start, end) in enumerate(zip(starts, ends, strict=True))
        ]

    def as_search_datetime(self) -> str | None:
        if self.start is None and self.end is None:
            return None
        return f"{_rfc3339(self.start)}/{_rfc3339(self.end)}"


def _latest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else max(first, second)


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else min(first, second)


def _rfc3339(value: datetime | None) -> str:
    return ".." if value is None else value.isoformat().replace("+00:00", "Z")


@dataclass
class Cursor:
    """The highest item datetime loaded so far, and which items sit exactly on it."""

    value: datetime | None = None
    ids: set[str] = field(default_factory=set)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Cursor:
        if not state:
            return cls()
        return cls(parse_timestamp(state["value"]), set(state["ids"]))

    def to_state(self) -> dict[str, Any]:
        return {"value": _rfc3339(self.value), "ids": sorted(self.ids)}

    def advance(self, value: datetime, item_id: str) -> None:
        if self.value is None or value > self.value:
            self.value, self.ids = value, {item_id}
        elif value == self.value:
            self.ids.add(item_id)


@dataclass(frozen=True)
class WindowSettings:
    since: datetime | None
    until: datetime | None
    lag: timedelta
    upper_bound: datetime
    """Fixed when the run starts: items that arrive while it runs are the next run's."""
    scheduler_interval: tuple[datetime, datetime] | None = None


def plan_window(cursor: Cursor, settings: WindowSettings) -> Window:
    """The window of this run: a scheduler's interval, else `since`/`until` moved on by the cursor."""
    if settings.scheduler_interval is not None:
        return Window(*settings.scheduler_interval, stateless=True)
    start = settings.since
    if cursor.value is not None and settings.until is None:
        start = _latest(start, cursor.value - settings.lag)
    return Window(start, settings.until or settings.upper_bound, stateless=settings.until is not None)


class WindowFilter:
    """Decides which items of a window are new, and moves the cursor over them."""

    def __init__(self, window: Window, cursor: Cursor) -> None:
        self.window = window
        self.cursor = cursor
        self._skip_at_start = cursor.ids if cursor.value is not None and cursor.value == window.start else set()

    def admits(self, value: datetime, item_id: str) -> bool:
        start, end = self.window.start, self.window.end
        if start is not None and (value < start or (value == start and item_id in self._skip_at_start)):
            return False
        return end is None or value < end or (value == end and not self.window.end_excluded)

    def record(self, value: datetime, item_id: str) -> None:
        if not self.window.stateless:
            self.cursor.advance(value, item_id)
