"""Paging through a STAC endpoint by its `next` links, as pystac-client follows them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pystac import Link
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from sources.stac.errors import BadPage


@dataclass(frozen=True)
class Page:
    url: str
    entries: list[Any]
    """The page's `features` or `collections`."""


def _next_link(page: dict[str, Any]) -> dict[str, Any] | None:
    return next((link for link in page.get("links") or [] if link.get("rel") == "next"), None)


def _read_page(stac_io: StacApiIO, request: str | Link, url: str, method: str, parameters: dict[str, Any]) -> Any:
    try:
        text = stac_io.read_text(request, method=method, parameters=parameters)
    except APIError as error:
        status = getattr(error, "status_code", None) or "with a connection error"
        raise BadPage(url, f"the server answered {status}: {str(error)[:500]}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise BadPage(url, f"not JSON ({error})") from None


def iter_pages(
    stac_io: StacApiIO, url: str, key: str, method: str = "GET", parameters: dict[str, Any] | None = None
) -> Iterator[Page]:
    """Yields every page of `url`, following `next` links with their own method, body and `merge`.

    A `next` link that leads back to a page already read is an error, not an endless loop.
    """
    parameters = parameters or {}
    request: str | Link = url
    seen = {orjson.dumps([url, method, parameters])}
    while True:
        page = _read_page(stac_io, request, url, method, parameters)
        if not isinstance(page, dict) or not isinstance(page.get(key), list):
            raise BadPage(url, f"expected a JSON object with a `{key}` list")
        yield Page(url, page[key])
        link = _next_link(page)
        if link is None or not page[key]:
            return
        fingerprint = orjson.dumps([link.get("href"), link.get("method", "GET"), link.get("body")])
        if fingerprint in seen:
            raise BadPage(url, f"its next link repeats a page already read ({link.get('href')})")
        seen.add(fingerprint)
        request, url = Link.from_dict(link), str(link.get("href"))


T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yields what `items` yields, read ahead by up to `depth` in a thread of its own.

    The server prepares the next page while this process shapes and writes the last one, so a load
    waits on the server only when it is slower than everything else. Order and errors are kept; an
    early stop ends the thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(item: Any) -> bool:
        while not stopped.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read_ahead() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(error)

    reader = threading.Thread(target=read_ahead, name="stac-page-prefetch", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        reader.join()
