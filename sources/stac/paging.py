"""Paging through a STAC endpoint by its `next` links, as pystac-client follows them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
