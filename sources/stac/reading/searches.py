"""Named searches from config, e.g. `[sources.stac.searches.s2_bavaria]`, checked before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import cql2
from dlt.common import logger
from pystac_client import ItemSearch

from ..errors import InvalidSearch, ItemSearchNeeded, StacSourceError
from ..planning import Window
from ..server import StacApi
from ..timestamps import parse_timestamp


class SearchConfig(TypedDict, total=False):
    collections: list[str]
    bbox: list[float]
    intersects: dict[str, Any]
    datetime: str
    ids: list[str]
    query: dict[str, Any]
    filter: dict[str, Any] | str
    filter_lang: str
    sortby: list[str] | str
    fields: list[str] | str
    limit: int
    max_items: int
    table_name: str


SEARCH_KEYS = frozenset(SearchConfig.__annotations__)
REQUEST_KEYS = SEARCH_KEYS - {"max_items", "table_name"}
SOURCE_TABLES = frozenset({"items", "collections", "rejected_items", "queryables", "conformance"})
"""Tables of the source's own resources; `items` merges without deduplication, so no search may load into it."""


@dataclass(frozen=True)
class NamedSearch:
    name: str
    parameters: dict[str, Any]
    table_name: str
    max_items: int | None
    start: datetime | None
    """The search's own datetime range, which the incremental window never leaves."""
    end: datetime | None

    def window(self, incremental: Window) -> Window:
        """The incremental window cut down to the search's own datetime range."""
        return incremental.clamped(self.start, self.end)

    def request(self, api: StacApi, window: Window) -> ItemSearch:
        return api.search(**{**self.parameters, "datetime": window.as_search_datetime()})


def _bounds(search: ItemSearch) -> tuple[datetime | None, datetime | None]:
    interval = search.get_parameters().get("datetime")
    if not interval:
        return None, None
    start, _, end = interval.partition("/") if "/" in interval else (interval, "", interval)
    return (
        None if start in ("", "..") else parse_timestamp(start),
        None if end in ("", "..") else parse_timestamp(end),
    )


def _cql2_json(name: str, text: str) -> dict[str, Any]:
    """CQL2 text as CQL2 JSON, since a POST search body takes only the latter.

    pystac-client converts it too, but not when `filter_lang` is given (it then sends cql2-text in the POST
    body, which servers refuse), and it lets cql2's bare `Exception` through, naming neither search nor filter.
    """
    try:
        return dict(cql2.Expr(text).to_json())
    except Exception as error:  # cql2 raises a bare Exception with the parser's report
        raise InvalidSearch(name, f"filter is not valid CQL2 text: {text!r}\n{error}") from None


def checked_search(api: StacApi, name: str, config: dict[str, Any], page_size: int) -> NamedSearch:
    """The search that `config` describes; raises `InvalidSearch` naming the search and the problem."""
    unknown = set(config) - SEARCH_KEYS
    if unknown:
        raise InvalidSearch(name, f"unknown keys {sorted(unknown)}; known keys: {sorted(SEARCH_KEYS)}")
    bbox = config.get("bbox")
    if bbox is not None and len(bbox) not in (4, 6):
        raise InvalidSearch(name, f"bbox needs 4 or 6 numbers, got {len(bbox)}: {list(bbox)}")
    table_name = config.get("table_name", f"search_{name}")
    if table_name in SOURCE_TABLES:
        raise InvalidSearch(name, f"table_name {table_name!r} is a table of the source itself; pick another one")
    parameters = {key: value for key, value in config.items() if key in REQUEST_KEYS}
    parameters.setdefault("limit", page_size)
    if isinstance(parameters.get("filter"), str):
        parameters.update(filter=_cql2_json(name, parameters["filter"]), filter_lang="cql2-json")
    if config.get("collections"):
        api.select_collections(list(config["collections"]), prefix=None)
    if "sortby" in parameters and not api.capabilities.sorts:
        logger.warning(f"Search `{name}`: the STAC API at {api.url} does not sort, so its `sortby` is not sent; "
                       "its items load in the order the server sends them.")  # fmt: skip
    try:
        start, end = _bounds(api.search(**parameters))
    except ItemSearchNeeded as error:
        raise InvalidSearch(name, str(error)) from None
    except StacSourceError:
        raise
    except Exception as error:  # pystac-client reports bad parameters with assorted exception types
        raise InvalidSearch(name, f"{type(error).__name__}: {error}") from None
    return NamedSearch(name, parameters, table_name, config.get("max_items"), start, end)
