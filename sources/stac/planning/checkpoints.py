"""Where a resource's reading stands, saved in its dlt state with every load package.

Each collection (or named search) has a checkpoint in `state["cursors"][<key>]`:

    {"value": "<RFC 3339>", "ids": [...],      the cursor: the highest item datetime loaded, and the ids at it
     "parts": [...],                            the parts of its window still to read; absent once all are read
     "field": "updated",                        what the cursor follows, where it is not `datetime`
     "late": {"value": ..., "ids": [...],       in a collection that loads by `datetime`: the newest `updated`
              "unfinished": true}}              loaded, where its late reads start (reading/late_arrivals.py),
                                                and whether its late read stopped at the end of a load package

A part is one search over a slice of the window, `{"start", "end", "end_excluded", "read_to"}`, where
`read_to` (a cursor) says how far a sorted search got: everything up to it is loaded, so after a crash the
part is read again from there. A part of an unsorted search has no `read_to` and is read again whole. A
backfill (a stateless window, which leaves the cursors alone) keeps its parts in `state["backfill"]`
instead, `{"window": "<start>/<end>", "parts": {<key>: [...]}}`, until it is read to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..timestamps import optional_timestamp, rfc3339
from .windows import Cursor, Window, WindowFilter, loaded_at_start


@dataclass
class Part:
    """A slice of a window that one search reads, and how far it has been read."""

    window: Window
    read_to: Cursor = field(default_factory=Cursor)
    """Everything up to here is loaded: the highest item datetime read, and the ids at it (sorted searches)."""

    def window_filter(self) -> WindowFilter:
        """What is left to read of this part: from `read_to` on, but for the ids read at exactly it."""
        if self.read_to.value is None:
            return WindowFilter(self.window)
        return WindowFilter(self.window.starting_at(self.read_to.value), frozenset(self.read_to.ids))

    def to_state(self) -> dict[str, Any]:
        return {
            "start": None if self.window.start is None else rfc3339(self.window.start),
            "end": None if self.window.end is None else rfc3339(self.window.end),
            "end_excluded": self.window.end_excluded,
            "read_to": self.read_to.to_state() or None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], stateless: bool) -> Part:
        window = Window(
            optional_timestamp(state["start"]), optional_timestamp(state["end"]), stateless, state["end_excluded"]
        )
        return cls(window, Cursor.from_state(state["read_to"]))


def started_at_cursor(window: Window, cursor: Cursor) -> Part:
    """A part of a new window; one that starts at the cursor has read the items at exactly it already."""
    loaded = loaded_at_start(window, cursor)
    return Part(window, Cursor(cursor.value, loaded)) if loaded else Part(window)


def parts_end(parts: list[Part]) -> datetime | None:
    """Where the latest of `parts` ends (None without parts)."""
    return max((part.window.end for part in parts if part.window.end is not None), default=None)


@dataclass
class Checkpoint:
    """One collection's (or named search's) cursor, and the parts of its window still to read."""

    cursor: Cursor = field(default_factory=Cursor)
    parts: list[Part] = field(default_factory=list)
    cursor_field: str | None = None
    """The item timestamp the cursor and the parts follow (`cursor_fields.py`); None for `datetime`."""
    late: Cursor = field(default_factory=Cursor)
    """Of a collection that loads by `datetime`: where its late arrivals are read from, on `updated`."""
    late_unfinished: bool = False
    """Its late read stopped at the end of a load package: saved so that `has_unread_parts` tells the run to go on
    (the next reading starts the late read again from `late`, which then says how far it got)."""

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Checkpoint:
        state = state or {}
        parts = [Part.from_state(part, False) for part in state.get("parts", [])]
        late = state.get("late") or {}
        return cls(Cursor.from_state(state), parts, state.get("field"), Cursor.from_state(late), "unfinished" in late)

    @property
    def is_new(self) -> bool:
        """Nothing was loaded or planned yet: the collection's first load is to come."""
        return self.cursor.value is None and not self.parts

    def to_state(self) -> dict[str, Any]:
        parts = {"parts": [part.to_state() for part in self.parts]} if self.parts else {}
        state = {**self.cursor.to_state(), **parts}
        if not state:
            return state
        unfinished = {"unfinished": True} if self.late_unfinished else {}
        late = {"late": {**self.late.to_state(), **unfinished}} if self.late.value or unfinished else {}
        return {**state, "field": self.cursor_field, **late} if self.cursor_field else {**state, **late}


def saved_checkpoints(state: dict[str, Any], keys: list[str]) -> dict[str, Checkpoint]:
    """The checkpoint of each key, from a resource's state."""
    saved = state.get("cursors", {})
    return {key: Checkpoint.from_state(saved.get(key)) for key in keys}


def saved_backfill(state: dict[str, Any], window: Window) -> dict[str, list[Part]] | None:
    """The parts that an interrupted backfill over the same `window` left to read, per key; None if there is none."""
    backfill = state.get("backfill") or {}
    if backfill.get("window") != window.as_search_datetime():
        return None
    return {key: [Part.from_state(part, True) for part in parts] for key, parts in backfill["parts"].items()}


def backfill_state(window: Window, parts: dict[str, list[Part]]) -> dict[str, Any]:
    unread = {key: [part.to_state() for part in key_parts] for key, key_parts in parts.items()}
    return {"window": window.as_search_datetime(), "parts": unread}


def has_unread_parts(state: Mapping[str, Any]) -> bool:
    """Whether a resource's state holds parts (or late reads) still to read: its reading stopped at the end of a
    load package."""
    return bool(state.get("backfill")) or any(
        saved.get("parts") or "unfinished" in saved.get("late", {}) for saved in state.get("cursors", {}).values()
    )


def cursor_field_names(state: Mapping[str, Any]) -> dict[str, str]:
    """What the cursor of each collection (or named search) in a resource's state follows: `datetime` or `updated`."""
    return {key: saved.get("field") or "datetime" for key, saved in state.get("cursors", {}).items()}
