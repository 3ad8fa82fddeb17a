"""A STAC API as this source sees it: conformance, collections, what it can do (probed once), and item pages.

Built on pystac-client's `Client` and `ItemSearch` (parameter checking and formatting) and on our
own page loop (`paging.py`). It knows nothing about tables.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urljoin

from dlt.common import logger
from pystac import Link
from pystac_client import Client, ItemSearch
from pystac_client.conformance import ConformanceClasses
from pystac_client.errors import ClientTypeError
from pystac_client.exceptions import APIError
from pystac_client.mixins import QUERYABLES_REL
from pystac_client.stac_api_io import StacApiIO

from ..arguments import at_least_one, one_of
from ..auth import StacApiCredentials, authorizer_for
from ..errors import (
    BadPage,
    ItemSearchNeeded,
    MissingConformance,
    NotAStacApi,
    StacApiUnreachable,
    StacSourceError,
    UnknownCollections,
)
from .capabilities import Capabilities
from .paging import Page, iter_pages
from .stac_io import SignedStacApiIO, stac_api_io

T = TypeVar("T")

ASCENDING_BY_DATETIME_THEN_ID = ["+properties.datetime", "+id"]
PROPERTY_PREFIX = "properties."
SEARCH_METHODS = ("POST", "GET")
_LACKS_ABSENT = {"op": "isNull", "args": [{"property": "dlt_stac:no_item_has_this"}]}
_NO_SUCH_ITEM = {"op": "in", "args": [{"property": "id"}, ["dlt-stac-no-such-item"]]}
_MET_BY_EVERY_ITEM = {
    "op": "and",
    "args": [_LACKS_ABSENT, {"op": "not", "args": [{"op": "and", "args": [_LACKS_ABSENT, _NO_SUCH_ITEM]}]}],
}
"""A filter that every item meets where filters hold as CQL2 defines them (`Capabilities.filters_hold`): it lacks a
property that no item has, and it is not both that and an item that does not exist."""
REFUSAL_STATUSES = frozenset({400, 422, 500, 501})
"""What a server that cannot do what a probe asks answers, every time; other failures (no answer, 429 or 502-504
after the retries) are not a refusal, and are raised."""
FEATURES_PARAMETERS = frozenset({"datetime", "bbox", "limit"})
"""What a `/collections/{id}/items` page of OGC API Features takes."""
SortBy = str | list[Any]
"""A search's `sortby` as pystac-client takes it: `"+a,-b"`, `["+a", "-b"]` or `[{"field": "a", "direction": ...}]`."""


def declares(conforms_to: list[str], conformance: ConformanceClasses) -> bool:
    """Whether a landing page's `conformsTo` declares `conformance` at any STAC API 1.x version: pystac-client
    knows only 1.0 URIs, while servers declare some classes at 1.1 (stac-fastapi-pgstac's Sort, for one)."""
    pattern = re.compile(rf"https://api\.stacspec\.org/v1\.\d+\.[^/]*{re.escape(conformance.value)}$")
    return any(pattern.match(uri) for uri in conforms_to)


class MethodRefused(Exception):
    """A probe sent by POST was answered 405: the API searches by GET."""


class StacApi:
    """One STAC API, opened: its landing page's endpoints, its collections and its `Capabilities`, all read when
    it is opened (`StacApi.open`). After that only searches and the queryables resource send requests."""

    def __init__(self, url: str, client: Client, stac_io: StacApiIO, page_size: int, search_method: str) -> None:
        self.url = url
        self.client = client
        self.stac_io = stac_io
        self.page_size = page_size
        """Entries per page asked of /collections (`limit`; a server that pages collections by another rule
        ignores it). Searches set their own `limit`."""
        self.declared = list(client.get_conforms_to())
        """The conformance classes the landing page declares."""
        for conformance in ConformanceClasses:  # so that pystac-client's own checks know the 1.1 classes too
            if declares(self.declared, conformance):
                client.add_conforms_to(conformance.name)
        self.search_url = self._href(client.get_search_link(), "search")
        self.collections_url = self._href(client.get_single_link("data"), "collections")
        self.queryables_url = self._href(client.get_single_link(QUERYABLES_REL), "queryables")
        listing = _read_aside(self._read_collections)  # its pages and the probes cost the server alike
        try:  # what the API can do, probed once, here
            self.capabilities = self._probed_capabilities(_method_offered(client, search_method))
        except Exception:
            listing.result()  # an error of the listing first, as when the collections were read first
            raise
        self.collections = listing.result()  # every collection the API shows

    def _href(self, link: Link | None, conventional_path: str) -> str:
        """Where a link of the landing page leads; the conventional path if there is no such link."""
        return link.absolute_href if link else f"{self.url.rstrip('/')}/{conventional_path}"

    @classmethod
    def open(cls, url: str, stac_io: StacApiIO, page_size: int = 250, search_method: str = "POST") -> StacApi:
        """Reads the landing page and the collections, and probes what the API can do; raises a clear error if it
        is unreachable or not a STAC API."""
        try:
            client = Client.open(url, stac_io=stac_io)
        except APIError as error:
            status = getattr(error, "status_code", None)
            if status is None:
                raise StacApiUnreachable(url, str(error)[:300]) from None
            if status >= 500:
                raise StacApiUnreachable(url, f"it kept answering HTTP {status} after retries") from None
            raise NotAStacApi(url, f"it answered HTTP {status}") from None
        except (ValueError, KeyError, TypeError, ClientTypeError) as error:
            raise NotAStacApi(url, f"its answer is not a STAC catalog ({type(error).__name__}: {error})") from None
        if not client.get_conforms_to():
            raise NotAStacApi(url, "its landing page declares no `conformsTo` classes")
        return cls(url, client, stac_io, page_size, search_method)

    def conforms_to(self, conformance: ConformanceClasses) -> bool:
        return self.client.conforms_to(conformance)

    def require(self, conformance: ConformanceClasses, needed_for: str) -> None:
        if not self.conforms_to(conformance):
            raise MissingConformance(self.url, conformance.name, needed_for)

    def conformance_classes(self) -> list[str]:
        return list(self.declared)

    def _read_collections(self) -> list[dict[str, Any]]:
        """Every collection the API shows (all pages of /collections, `page_size` a page: servers default to 10,
        which makes a catalog of 1,000 collections cost 100 requests)."""
        pages = iter_pages(self.stac_io, self.collections_url, "collections", parameters={"limit": self.page_size})
        return [collection for page in pages for collection in page.entries]

    def select_collections(self, ids: list[str] | None, prefix: str | None) -> list[str]:
        """The ids asked for (all, or those given, or those starting with `prefix`); unknown ids are an error."""
        existing = [collection["id"] for collection in self.collections]
        if ids:
            known = set(existing)
            unknown = [collection_id for collection_id in ids if collection_id not in known]
            if unknown:
                raise UnknownCollections(self.url, unknown, existing)
            selected = list(ids)
        else:
            selected = existing
        return [collection_id for collection_id in selected if collection_id.startswith(prefix or "")]

    def item_count(self, collection_id: str) -> int | None:
        """How many items the API says the collection holds (`numberMatched` of a `limit=1` search), where it says."""
        return self.first_page(self.search(collections=[collection_id], limit=1)).matched

    def search(self, **parameters: Any) -> ItemSearch:
        """An item search sent by the API's search method, sorted by datetime then id unless `sortby` says
        otherwise, where the API sorts (its `sortby` then names properties as the API takes them); pystac-client
        checks and formats the parameters, and writes a CQL2 JSON filter as CQL2 text for GET."""
        if not self.capabilities.item_search:
            return self._collection_items(**parameters)
        sortby = parameters.pop("sortby", ASCENDING_BY_DATETIME_THEN_ID)
        if self.capabilities.sorts:
            parameters["sortby"] = _named_as(sortby, self.capabilities.sort_prefix)
        return self._item_search(self.capabilities.search_method, self.stac_io, **parameters)

    def _collection_items(self, **parameters: Any) -> ItemSearch:
        """Where the API has no item search but OGC API Features: the items of one collection, paged from its
        `/collections/{id}/items` by GET with `datetime`, `bbox` and `limit`, which that endpoint takes."""
        if not self.capabilities.features:
            raise MissingConformance(self.url, "ITEM_SEARCH", "searching items")
        collections = parameters.pop("collections", None) or []
        parameters.pop("sortby", None)  # the API does not sort (`sorts`)
        asked = sorted(set(parameters) - FEATURES_PARAMETERS - {"filter_lang"})
        if len(collections) != 1 or asked:
            raise ItemSearchNeeded(self.url, ", ".join(asked) if asked else f"{len(collections) or 'all'} collections")
        url = self._items_url(collections[0])
        return ItemSearch(url, method="GET", stac_io=self.stac_io, client=self.client, **parameters)

    def _items_url(self, collection_id: str) -> str:
        """The collection's `items` link, else where OGC API Features puts its items."""
        collection = next((entry for entry in self.collections if entry.get("id") == collection_id), {})
        links = collection.get("links") or []
        link = next((link for link in links if link.get("rel") == "items" and link.get("href")), None)
        own_url = f"{self.collections_url}/{collection_id}"
        return urljoin(own_url, str(link["href"])) if link else f"{own_url}/items"

    def _item_search(self, method: str, stac_io: StacApiIO, **parameters: Any) -> ItemSearch:
        if method == "GET" and isinstance(parameters.get("filter"), dict):
            parameters.pop("filter_lang", None)  # so that pystac-client writes it as CQL2 text
        return ItemSearch(self.search_url, method=method, stac_io=stac_io, client=self.client, **parameters)

    def _probed_capabilities(self, method: str) -> Capabilities:
        """What the API can do, asked with `limit=1` searches by `method`: by GET instead where the API answers a
        POST probe with 405."""
        try:
            return self._capabilities_by(method)
        except MethodRefused:
            logger.info(f"The STAC API at {self.url} answered 405 to a POST search: searching by GET")
            return self._capabilities_by("GET")

    def _capabilities_by(self, method: str) -> Capabilities:
        item_search = self.conforms_to(ConformanceClasses.ITEM_SEARCH)
        features = self.conforms_to(ConformanceClasses.FEATURES) or any(
            re.search(r"/ogcapi-features-1/[^/]+/conf/core$", uri) for uri in self.declared
        )
        probing = item_search and self.conforms_to(ConformanceClasses.SORT)
        sort_prefix, sample = self._sort_prefix(method) if probing else (None, None)
        filters = item_search and self.conforms_to(ConformanceClasses.FILTER)
        filters_hold = self._filters_hold(method, sample) if filters else False
        queryables = self._queryable_properties() if filters else {}
        return Capabilities(method, item_search, features, sort_prefix, filters_hold, MappingProxyType(queryables))

    def _sort_prefix(self, method: str) -> tuple[str | None, Page]:
        """How `sortby` names an item property here (`Capabilities.sort_prefix`): asked with `limit=1` searches,
        each way in turn; where the server refuses both but answers the same search unsorted, None (and a warning
        says what that costs). An error that the unsorted search gets too is not about sorting, and is raised.
        With it, the page of the search that was answered."""
        refusals = []
        for prefix in (PROPERTY_PREFIX, ""):
            try:
                page = self._probe(method, sortby=_named_as(ASCENDING_BY_DATETIME_THEN_ID, prefix))
            except BadPage as refusal:
                if refusal.status not in REFUSAL_STATUSES:
                    raise
                refusals.append(refusal)
                continue
            if refusals:
                logger.info(f"The STAC API at {self.url} sorts by `datetime` but not by `properties.datetime` "
                            f"({refusals[0]}): this run's searches sort by the bare names")  # fmt: skip
            return prefix, page
        page = self._probe(method, retried=True)  # retried as every search is: an error here is not about sorting
        logger.warning(
            f"The STAC API at {self.url} declares the Sort extension but refuses sorted searches ({refusals[0]}); "
            "this run reads items in the server's order: each collection's window is read by one search, not cut "
            "into parts read at once, and a part that a crash interrupts is read again from its start."
        )
        return None, page

    def _filters_hold(self, method: str, sample: Page | None) -> bool:
        """Whether the API's filters hold as CQL2 defines them (`Capabilities.filters_hold`): asked with a `limit=1`
        search that every item meets where they hold; where the probe of Sort found an item (`sample`, its page), in
        that item's collection: over the whole catalog, that filter cost pgstac 45 s right after 1,000 collections
        were created (the statistics of their partitions were new), in one collection 0.1 s. Yes for an API whose
        search finds no item at all (its filters have nothing to lose)."""
        if sample is not None and not sample.entries:
            return True
        try:
            if self._probe(method, filter=_MET_BY_EVERY_ITEM, filter_lang="cql2-json", **_scope_of(sample)).entries:
                return True
        except BadPage as refusal:
            if refusal.status not in REFUSAL_STATUSES:
                raise
            logger.warning(f"The STAC API at {self.url} cannot filter as CQL2 defines it ({refusal}): each collection "
                           "is asked about on its own, and loads by `datetime`")  # fmt: skip
            return False
        if sample is None and not self._probe(method, retried=True).entries:
            return True
        logger.warning(f"The STAC API at {self.url} finds no item for a filter that every item meets: each collection "
                       "is asked about on its own, and loads by `datetime`")  # fmt: skip
        return False

    def _probe(self, method: str, retried: bool = False, **parameters: Any) -> Page:
        """The first page of a `limit=1` search by `method`, sent without retries on HTTP 500
        (`SignedStacApiIO.probing`) unless `retried`; `MethodRefused` where a POST is answered 405."""
        io = self.stac_io if retried or not isinstance(self.stac_io, SignedStacApiIO) else self.stac_io.probing()
        search = self._item_search(method, io, limit=1, **parameters)
        pages = iter_pages(io, search.url, "features", method=method, parameters=search.get_parameters())
        try:
            return next(pages)
        except BadPage as error:
            if error.status == 405 and method == "POST":
                raise MethodRefused() from None
            raise
        finally:
            pages.close()

    def _queryable_properties(self) -> dict[str, Any]:
        """The JSON schema of each property the API can filter on; none where it has no readable queryables
        document (the run then goes on without them: nothing but the choice of cursor depends on them)."""
        try:
            properties = self.read_queryables().get("properties") or {}
        except (APIError, StacSourceError, ValueError, TypeError, AttributeError) as error:
            logger.warning(f"The queryables of {self.queryables_url} cannot be read ({type(error).__name__}): "
                           "every collection loads by `datetime`")  # fmt: skip
            return {}
        return dict(properties) if isinstance(properties, dict) else {}

    def read_queryables(self) -> dict[str, Any]:
        """The API's queryables document, read now."""
        self.require(ConformanceClasses.FILTER, "reading queryables")
        return dict(self.stac_io.read_json(self.queryables_url))

    def search_pages(self, search: ItemSearch, stac_io: StacApiIO | None = None) -> Generator[Page, None, None]:
        """The search's pages, each read when it is asked for. A POST search answered 405 (by an API whose probes
        did not find it out: one that neither sorts nor filters) is sent again by GET."""
        io = stac_io or self.stac_io
        pages = iter_pages(io, search.url, "features", method=search.method, parameters=search.get_parameters())
        try:
            yield next(pages)
        except BadPage as error:
            if error.status != 405 or search.method != "POST":
                raise
            search = self._item_search("GET", io, **_arguments_of(search.get_parameters()))
            pages = iter_pages(io, search.url, "features", method="GET", parameters=search.get_parameters())
        yield from pages

    def first_page(self, search: ItemSearch, stac_io: StacApiIO | None = None) -> Page:
        pages = self.search_pages(search, stac_io)
        try:
            return next(pages)
        finally:
            pages.close()


def _named_as(sortby: SortBy, prefix: str | None) -> SortBy:
    """`sortby` with its `properties.` prefixes taken off where `prefix` is the bare form ("")."""
    if prefix != "":
        return sortby
    fields = sortby.split(",") if isinstance(sortby, str) else list(sortby)
    return [_field_named_as(field) for field in fields]


def _field_named_as(field: Any) -> Any:
    if isinstance(field, dict):
        return {**field, "field": str(field.get("field", "")).removeprefix(PROPERTY_PREFIX)}
    text = str(field).strip()
    sign = text[:1] if text[:1] in "+-" else ""
    return sign + text.removeprefix(sign).removeprefix(PROPERTY_PREFIX)


def _method_offered(client: Client, method: str) -> str:
    """`method`, unless it is POST and the landing page's search links offer GET only."""
    offered = {str(link.extra_fields.get("method") or "GET").upper() for link in client.get_links("search")}
    return "GET" if method == "POST" and offered == {"GET"} else method


def _arguments_of(parameters: dict[str, Any]) -> dict[str, Any]:
    """`ItemSearch`'s arguments for the parameters of a POST search: its `filter-lang` left to pystac-client."""
    return {key: value for key, value in parameters.items() if key != "filter-lang"}


def _read_aside(read: Callable[[], T]) -> Future[T]:
    """What `read` returns (or raises), read in a thread of its own while the caller goes on; a daemon, as the
    reading threads of `paging.py` are, so that Ctrl-C or an error of the caller does not wait for its requests."""
    result: Future[T] = Future()

    def run() -> None:
        try:
            result.set_result(read())
        except BaseException as error:
            result.set_exception(error)

    threading.Thread(target=run, name="stac-collections", daemon=True).start()
    return result


def _scope_of(sample: Page | None) -> dict[str, Any]:
    """The search parameters that keep a probe to the collection of the first item of `sample`, where it names one."""
    first = sample.entries[0] if sample is not None and sample.entries else None
    collection = first.get("collection") if isinstance(first, dict) else None
    return {"collections": [collection]} if isinstance(collection, str) else {}


def open_api(
    url: str,
    credentials: StacApiCredentials,
    page_size: int = 250,
    concurrency: int = 2,
    search_method: str = "POST",
    max_retries: int = 5,
    backoff_factor: float = 0.5,
    timeout: float = 60.0,
) -> StacApi:
    """The STAC API at `url`, signed in with the first way in that `credentials` offer, its requests retried as
    the source's are (`stac_io.py`); `concurrency` requests at a time. Raises the errors of `StacApi.open`."""
    page_size, concurrency = at_least_one("page_size", page_size), at_least_one("concurrency", concurrency)
    method = one_of("search_method", search_method, SEARCH_METHODS)
    authorizer = authorizer_for(url, credentials, timeout)
    stac_io = stac_api_io(url, authorizer, max_retries, backoff_factor, timeout, connections=concurrency)
    return StacApi.open(url, stac_io, page_size, method)
