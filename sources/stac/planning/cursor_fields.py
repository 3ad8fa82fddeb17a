"""What a collection's incremental window runs over: its items' `datetime`, or their `updated`.

A collection's cursor is its items' `datetime` (`start_datetime` for range items) unless it can be `updated`:
where every item of the collection carries `updated` and the API can filter and sort on it (the Filter and Sort
extensions, with `updated` among its date-time queryables), a run reads what was added or changed since the
last one, whatever the items' acquisition time. Late arrivals and edits then reach the tables, and range items
or items that share one `datetime` are not read again on every run. Which field a collection uses is chosen
at its first load and kept in its checkpoint.

A window over `datetime` is asked for with STAC's `datetime` parameter; one over `updated` with a CQL2 filter,
and `since` (which bounds the acquisition time) then goes into the `datetime` parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import MalformedItem
from ..timestamps import rfc3339
from .windows import Window, WindowSettings

DATETIME_NAME = "datetime"
UPDATED_NAME = "updated"


def item_cursor(row: dict[str, Any]) -> datetime:
    """What incremental loading orders items by: `datetime`, or `start_datetime` for range items."""
    return row["datetime"] or row["start_datetime"]


@dataclass(frozen=True)
class CursorField:
    """The item timestamp that a collection's cursor, windows and sort order follow."""

    name: str
    since: datetime | None = None
    """Where the acquisition time starts (`since`), for a field other than `datetime` itself."""
    acquired_by: datetime | None = None
    """Where the acquisition time ends (included), for the late arrivals of a collection that loads by `datetime`:
    the start of its own window, which reads the items acquired from there on, but for those loaded at exactly it
    (`reading/late_arrivals.py` leaves out on the client the items the collection's own reads admit)."""
    acquired_outside: tuple[tuple[datetime | None, datetime | None], ...] = ()
    """Acquisition times (`start`, `end`, both excluded; None: open) that the late arrivals leave out on the server:
    those of the parts an interrupted run left, which read them."""

    @property
    def checkpoint_name(self) -> str | None:
        """The field as a checkpoint names it: not at all for `datetime`, as checkpoints from before the choice."""
        return None if self.name == DATETIME_NAME else self.name

    def window_settings(self, settings: WindowSettings) -> WindowSettings:
        """The run's window settings for a cursor over this field: `since` bounds the acquisition time, so it
        starts only a `datetime` cursor (another field's searches bound `datetime` themselves)."""
        return settings if self.name == DATETIME_NAME else dataclasses.replace(settings, since=None)

    @property
    def ascending(self) -> list[str]:
        return [f"+properties.{self.name}", "+id"]

    @property
    def descending(self) -> list[str]:
        return [f"-properties.{self.name}", "-id"]

    def value_of(self, row: dict[str, Any]) -> datetime:
        """The item's cursor value; raises `MalformedItem` when the item has none."""
        if self.name == DATETIME_NAME:
            return item_cursor(row)
        value = row.get(self.name)
        if value is None:
            raise MalformedItem(f"properties.{self.name} is null, and its collection is loaded by `{self.name}`")
        return value

    def search_parameters(
        self, window: Window, loaded_at_start: frozenset[str] = frozenset(), ids_bytes_at_most: int = 0
    ) -> dict[str, Any]:
        """The search parameters that ask for `window`'s items; those of a field other than `datetime` also ask
        for its order (`datetime` is the API layer's default order where the API sorts).

        `loaded_at_start` (for an API with the Filter extension) where their ids take at most `ids_bytes_at_most`:
        see `_excluded`.
        """
        excluded = self._excluded(window, loaded_at_start, ids_bytes_at_most)
        if self.name == DATETIME_NAME:
            found = {"datetime": window.as_search_datetime()}
            return {**found, "filter": excluded[0], "filter_lang": "cql2-json"} if excluded else found
        acquired = {"datetime": f"{rfc3339(self.since)}/.."} if self.since else {}
        conditions = [self._filter(window), *self._acquisition(), *excluded]
        condition = {"op": "and", "args": conditions} if len(conditions) > 1 else conditions[0]
        return {"filter": condition, "filter_lang": "cql2-json", "sortby": self.ascending, **acquired}

    def window_condition(
        self, window: Window, loaded_at_start: AbstractSet[str] = frozenset(), ids_bytes_at_most: int = 0
    ) -> dict[str, Any]:
        """A CQL2 JSON condition that every item of `window` meets, for a search of several collections at once,
        less the items `loaded_at_start` where their ids take at most `ids_bytes_at_most` (see `_excluded`).
        For `datetime` it is the overlap that STAC's `datetime` parameter asks for: an instant inside the window,
        or a range (`start_datetime`..`end_datetime`) that reaches into it."""
        if self.name == DATETIME_NAME:
            instant = _within("datetime", "datetime", window, end_excluded=False)
            ranged = _within("end_datetime", "start_datetime", window, end_excluded=False)
            condition = {"op": "or", "args": [instant, ranged]}
        else:
            condition = self._filter(window)
        conditions = [condition, *self._acquisition(), *self._excluded(window, loaded_at_start, ids_bytes_at_most)]
        return {"op": "and", "args": conditions} if len(conditions) > 1 else condition

    def _excluded(
        self, window: Window, loaded_at_start: frozenset[str], ids_bytes_at_most: int
    ) -> list[dict[str, Any]]:
        """The condition that leaves out the items `loaded_at_start`, the ids at exactly the window's start that
        were loaded before, so that a run does not read them again (a collection whose 20,000 items share one
        `datetime` was otherwise read whole on every run); none when their ids take more than `ids_bytes_at_most`
        of a request body (`WindowFilter` then leaves them out after reading). Only at the start: an item loaded
        there and edited since has moved on (its `updated`), and its edit is in the window."""
        if not loaded_at_start or window.start is None:
            return []
        if sum(len(item_id) + 4 for item_id in loaded_at_start) > ids_bytes_at_most:
            return []
        return [_not_loaded(self.name, window.start, loaded_at_start)]

    def _filter(self, window: Window) -> dict[str, Any]:
        return _within(self.name, self.name, window, window.end_excluded)

    def _acquisition(self) -> list[dict[str, Any]]:
        by = [] if self.acquired_by is None else [_acquired_at_or_before(self.acquired_by)]
        return by + [_not_acquired_within(start, end) for start, end in self.acquired_outside]


DATETIME = CursorField(DATETIME_NAME)


def _within(at_or_after_start: str, at_or_before_end: str, window: Window, end_excluded: bool) -> dict[str, Any]:
    """`at_or_after_start >= window.start AND at_or_before_end <= window.end` (or `<` where the end is excluded), the
    open ends left out; with both open, that `at_or_after_start` is set."""
    comparisons = []
    if window.start is not None:
        comparisons.append(_compare(">=", at_or_after_start, window.start))
    if window.end is not None:
        comparisons.append(_compare("<" if end_excluded else "<=", at_or_before_end, window.end))
    if not comparisons:
        return {"op": "not", "args": [is_null(at_or_after_start)]}
    return comparisons[0] if len(comparisons) == 1 else {"op": "and", "args": comparisons}


def _not_loaded(name: str, start: datetime, loaded: AbstractSet[str]) -> dict[str, Any]:
    """That an item is not one of those `loaded` at exactly `start` (`name` its cursor value; pgstac compares a
    range item's `datetime` as its `start_datetime`, as the cursor does)."""
    at_start = _compare("=", name, start)
    return {
        "op": "not",
        "args": [{"op": "and", "args": [at_start, {"op": "in", "args": [{"property": "id"}, sorted(loaded)]}]}],
    }


def _acquired_at_or_before(end: datetime) -> dict[str, Any]:
    """That an item may have been acquired at or before `end`: its `datetime` (pgstac's is a range item's
    `start_datetime`), or its `start_datetime`, is not later. A range item that also carries a later `datetime`
    is matched too; the client compares the acquisition time as the cursor does."""
    return {"op": "or", "args": [_compare("<=", "datetime", end), _compare("<=", "start_datetime", end)]}


def _not_acquired_within(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """That an item's `datetime` is not between `start` and `end` (both excluded), or that it has none: where
    `datetime` is null (a range item, outside pgstac), the client decides."""
    outside = [_compare("<=", "datetime", start)] if start is not None else []
    outside += [_compare(">=", "datetime", end)] if end is not None else []
    return {"op": "or", "args": [is_null("datetime"), *outside]}


def _compare(op: str, name: str, value: datetime) -> dict[str, Any]:
    return {"op": op, "args": [{"property": name}, {"timestamp": rfc3339(value)}]}


def is_null(name: str) -> dict[str, Any]:
    return {"op": "isNull", "args": [{"property": name}]}


def saved_field(name: str | None, since: datetime | None) -> CursorField:
    """The field a checkpoint names (none: `datetime`, which checkpoints from before the choice name no field)."""
    return DATETIME if name in (None, DATETIME_NAME) else CursorField(str(name), since)
