"""What a collection's incremental window runs over: its items' `datetime`, or their `updated`.

A collection's cursor is its items' `datetime` (`start_datetime` for range items) unless it can be `updated`:
where every item of the collection carries `updated` and the API can filter and sort on it (the Filter and Sort
extensions, with `updated` among its date-time queryables), a run reads what was added or changed since the
last one, whatever the items' acquisition time. Late arrivals and edits then reach the tables, and range items
or items that share one `datetime` are not read again on every run. Which field a collection uses is chosen
at its first load and kept in its checkpoint.

A window over `datetime` is asked for with a CQL2 filter on the cursor value where the API filters (an instant's
`datetime`, or a range item's `start_datetime`, inside the window), else with STAC's `datetime` parameter, which
also matches every range item whose interval merely overlaps the window: those are read again, and left out by
`WindowFilter`. A window over `updated` is asked for with a CQL2 filter, and `since` (which bounds the
acquisition time) then goes into the `datetime` parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dlt.common import logger
from pystac_client.conformance import ConformanceClasses

from .api import StacApi
from .collection_groups import Conditions, groups_of, items_matched
from .errors import MalformedItem, StacSourceError
from .paging import read_concurrently
from .rows import item_cursor
from .windows import Window, WindowSettings, rfc3339

DATETIME_NAME = "datetime"
UPDATED_NAME = "updated"


@dataclass(frozen=True)
class CursorField:
    """The item timestamp that a collection's cursor, windows and sort order follow."""

    name: str
    since: datetime | None = None
    """Where the acquisition time starts (`since`), for a field other than `datetime` itself."""

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
        self, window: Window, filters: bool, loaded_at_start: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The search parameters that ask for `window`'s items, as a CQL2 filter where the API `filters`; those of
        a field other than `datetime` also ask for its order (`datetime` is the API layer's default order where
        the API sorts).

        `loaded_at_start` (for an API with the Filter extension) are the ids at exactly the window's start that
        were loaded before: a CQL2 condition leaves them out, so that a run does not read them again (a
        collection whose 20,000 items share one `datetime` was otherwise read whole on every run), unless they
        are too many for a request body; `WindowFilter` then leaves them out after reading.
        """
        if self.name == DATETIME_NAME and not filters:
            return {"datetime": window.as_search_datetime()}
        conditions = [] if window.start is None and window.end is None else [self.window_condition(window)]
        if loaded_at_start and window.start is not None and _fit_in_a_body(loaded_at_start):
            conditions.append(self._not_loaded(window.start, loaded_at_start))
        found = {} if not conditions else {"filter": _all_of(conditions), "filter_lang": "cql2-json"}
        if self.name == DATETIME_NAME:
            return found
        acquired = {"datetime": f"{rfc3339(self.since)}/.."} if self.since else {}
        return {**found, "sortby": self.ascending, **acquired}

    def window_condition(self, window: Window) -> dict[str, Any]:
        """A CQL2 JSON condition that the items of `window` meet, and no other: their cursor value inside it."""
        return self._on_cursor(lambda name: _within(name, window))

    def _not_loaded(self, start: datetime, loaded: frozenset[str]) -> dict[str, Any]:
        """That an item is not one of those `loaded` at exactly `start`."""
        at_start = self._on_cursor(lambda name: _compare("=", name, start))
        loaded_ids = {"op": "in", "args": [{"property": "id"}, sorted(loaded)]}
        return {"op": "not", "args": [{"op": "and", "args": [at_start, loaded_ids]}]}

    def _on_cursor(self, condition: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """`condition` on the item's cursor value. For `datetime` that is an instant's `datetime`, or a range
        item's `start_datetime` where its `datetime` is null (pgstac's `datetime` is never null: it holds the
        `start_datetime` of a range item, and pgstac compares `start_datetime` as that column too)."""
        if self.name != DATETIME_NAME:
            return condition(self.name)
        range_start = {"op": "and", "args": [_is_null(DATETIME_NAME), condition("start_datetime")]}
        return {"op": "or", "args": [condition(DATETIME_NAME), range_start]}


DATETIME = CursorField(DATETIME_NAME)

EXCLUDED_IDS_BYTES_AT_MOST = 768 * 1024
"""What the ids that a search leaves out by name may take of its body: nginx, a usual proxy in front of an API,
refuses bodies over 1 MB unless told otherwise (20,000 ids of 28 characters take 620 KB)."""


def _fit_in_a_body(ids: frozenset[str]) -> bool:
    return sum(len(item_id) + 4 for item_id in ids) <= EXCLUDED_IDS_BYTES_AT_MOST


def _within(name: str, window: Window) -> dict[str, Any]:
    """`name >= window.start AND name <= window.end` (or `<` where the end is excluded), the open ends left out;
    with both open, that `name` is set."""
    comparisons = []
    if window.start is not None:
        comparisons.append(_compare(">=", name, window.start))
    if window.end is not None:
        comparisons.append(_compare("<" if window.end_excluded else "<=", name, window.end))
    return _all_of(comparisons) if comparisons else {"op": "not", "args": [_is_null(name)]}


def _all_of(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return conditions[0] if len(conditions) == 1 else {"op": "and", "args": conditions}


def _compare(op: str, name: str, value: datetime) -> dict[str, Any]:
    return {"op": op, "args": [{"property": name}, {"timestamp": rfc3339(value)}]}


def _is_null(name: str) -> dict[str, Any]:
    return {"op": "isNull", "args": [{"property": name}]}


def saved_field(name: str | None, since: datetime | None) -> CursorField:
    """The field a checkpoint names (none: `datetime`, which checkpoints from before the choice name no field)."""
    return DATETIME if name in (None, DATETIME_NAME) else CursorField(str(name), since)


def api_filters_on_updated(api: StacApi) -> bool:
    """Whether the API can filter and sort items on `updated` as a timestamp: Filter and Sort, and `updated`
    a date-time queryable (pgstac, for one, compares a property it does not list as text)."""
    if not (api.conforms_to(ConformanceClasses.FILTER) and api.conforms_to(ConformanceClasses.SORT)):
        return False
    definition = api.queryable_properties().get(UPDATED_NAME) or {}
    return definition.get("format") == "date-time"


def chosen_fields(
    api: StacApi, collections: list[str], since: datetime | None, page_size: int, concurrency: int
) -> dict[str, CursorField]:
    """The field of each collection loaded for the first time: `updated` where the API filters on it and no item
    of the collection lacks `updated`; else `datetime`. A search per `COLLECTIONS_PER_SEARCH` collections finds
    those with an item that lacks it, `concurrency` at once.

    An empty collection gets `updated` too, but keeps no checkpoint until something loads: the choice is made
    again at its next run.
    """
    if not collections or not api_filters_on_updated(api):
        return dict.fromkeys(collections, DATETIME)
    lacking_updated = dict.fromkeys(collections, _is_null(UPDATED_NAME))
    searches = [_lacking_updated(api, group, page_size) for group in groups_of(lacking_updated)]
    lacking = {collection for _, found in read_concurrently(searches, concurrency) for collection in found}
    return {
        collection: DATETIME if collection in lacking else CursorField(UPDATED_NAME, since)
        for collection in collections
    }


def _lacking_updated(api: StacApi, conditions: Conditions, page_size: int) -> Iterator[set[str]]:
    """Yields once the collections of `conditions` with an item that lacks `updated`: all of them where the API
    could not tell."""
    try:
        matched = next(items_matched(api, conditions, page_size))
    except StacSourceError as error:
        logger.warning(f"{', '.join(conditions)} load by `datetime`: the API could not tell which of their items "
                       f"lack `updated` ({error})")  # fmt: skip
        yield set(conditions)
        return
    yield set(matched)
