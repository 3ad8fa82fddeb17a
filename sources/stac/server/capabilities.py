"""What a STAC API can do, as a run found it out once, when it opened the API (`StacApi.open`): a frozen value that
the rest of the source reads. Nothing else asks the server what it can do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

IDS_BYTES_AT_MOST = {"POST": 768 * 1024, "GET": 2 * 1024}
"""What the ids that a search leaves out by name may take of its request (`CursorField._excluded`): of a POST
body, 768 KB, as nginx, a usual proxy in front of an API, refuses bodies over 1 MB unless told otherwise (20,000
ids of 28 characters take 620 KB); of a GET URL, 2 KB, as nginx refuses request lines over 8 KB. A search of
several collections shares it among them."""


@dataclass(frozen=True)
class Capabilities:
    search_method: str
    """How searches are sent: POST (a JSON body) or GET (a query string, the filter as CQL2 text); GET where
    asked, where the landing page's search links offer GET only, or where a POST probe was answered 405."""
    item_search: bool
    """Whether the API has item search (`/search`); else each collection is paged from its `items` link."""
    features: bool
    """Whether the API pages each collection's items (OGC API Features), as STAC or OGC declares it."""
    sort_prefix: str | None
    """How `sortby` names an item property: `properties.<name>` as the API spec writes it, `<name>` where the
    server refuses the first but sorts on the second (stac-fastapi-geoparquet), None where it does not sort."""
    filters_hold: bool
    """Whether the API's filters hold as CQL2 defines them for what this source composes: a property an item lacks
    is null, and the NOT of an AND is its NOT (stac-fastapi-geoparquet 0.0.7 matches nothing on either)."""
    queryables: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The JSON schema of each property the API can filter on (its queryables document's `properties`)."""

    @property
    def sorts(self) -> bool:
        return self.sort_prefix is not None

    @property
    def ids_bytes_at_most(self) -> int:
        """What the ids that a search leaves out by name may take of its request: see `IDS_BYTES_AT_MOST`."""
        return IDS_BYTES_AT_MOST[self.search_method]

    def filters_on_timestamp(self, name: str) -> bool:
        """Whether the API filters on property `name` as a timestamp (a `date-time` queryable, where filters hold)."""
        definition = self.queryables.get(name) or {}
        return isinstance(definition, Mapping) and definition.get("format") == "date-time" and self.filters_hold
