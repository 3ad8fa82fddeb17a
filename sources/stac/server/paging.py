"""Paging through a STAC endpoint by its `next` links, as pystac-client follows them, and reading several at once."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pystac import Link
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from ..errors import BadPage


@dataclass(frozen=True)
class Page:
    url: str
    entries: list[Any]
    """The page's `features` or `collections`."""
    matched: int | None = None
    """`numberMatched`, where the server counts what the request matches."""
    last: bool = True
    """No page follows this one."""


def _next_link(page: dict[str, Any]) -> dict[str, Any] | None:
    return next((link for link in page.get("links") or [] if link.get("rel") == "next"), None)


def _number_matched(page: dict[str, Any]) -> int | None:
    context = page.get("context")
    matched = page.get("numberMatched", context.get("matched") if isinstance(context, dict) else None)
    return matched if isinstance(matched, int) else None


def _read_page(stac_io: StacApiIO, request: str | Link, url: str, method: str, parameters: dict[str, Any]) -> Any:
    try:
        return stac_io.read_json(request, method=method, parameters=parameters)
    except APIError as error:
        status = getattr(error, "status_code", None)
        failure = f"the server answered {status}" if status else "the request failed"
        raise BadPage(url, f"{failure}: {str(error)[:500]}", status) from None
    except orjson.JSONDecodeError as error:
        raise BadPage(url, f"not JSON ({error})") from None


def iter_pages(
    stac_io: StacApiIO, url: str, key: str, method: str = "GET", parameters: dict[str, Any] | None = None
) -> Generator[Page, None, None]:
    """Yields every page of `url`, following `next` links with their own method, body and `merge`.

    A `next` link that leads back to a page already read is an error, not an endless loop. The requests
    read are remembered by a 16-byte digest, as a search of a million items pages thousands of them.
    """
    parameters = parameters or {}
    request: str | Link = url
    seen = {_request_digest(url, method, parameters)}
    while True:
        page = _read_page(stac_io, request, url, method, parameters)
        if not isinstance(page, dict) or not isinstance(page.get(key), list):
            raise BadPage(url, f"expected a JSON object with a `{key}` list")
        link = _next_link(page) if page[key] else None
        yield Page(url, page[key], _number_matched(page), last=link is None)
        if link is None:
            return
        digest = _request_digest(link.get("href"), link.get("method", "GET"), link.get("body"))
        if digest in seen:
            raise BadPage(url, f"its next link repeats a page already read ({link.get('href')})")
        seen.add(digest)
        request, url = Link.from_dict(link), str(link.get("href"))


def _request_digest(url: Any, method: Any, body: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps([url, method, body]), digest_size=16).digest()


T = TypeVar("T")
_READER_DONE = object()


def read_concurrently(
    streams: Sequence[Iterator[T]], concurrency: int, depth: int = 2
) -> Generator[tuple[int, T], None, None]:
    """Yields `(index of the stream, item)` for every item of `streams`, up to `concurrency` of them read at once.

    Each stream is read in order by one thread at a time, ahead of the consumer by up to `depth * concurrency`
    items in all, so the server prepares the next pages while this process shapes and writes the last ones.
    Streams start in their order as threads come free. The first error of any stream is raised here. An
    early stop, or an error, tells every thread to stop without waiting for them: one in the middle of a
    request stops when the request returns.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth * concurrency)
    pending = iter(enumerate(streams))
    pending_lock = threading.Lock()
    stopped = threading.Event()

    def offer(entry: Any) -> bool:
        while not stopped.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next_stream() -> tuple[int, Iterator[T]] | None:
        with pending_lock:
            return next(pending, None)

    def read_streams() -> None:
        try:
            while (stream := next_stream()) is not None:
                index, items = stream
                for item in items:
                    if not offer((index, item)):
                        return
            offer(_READER_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(error)

    readers = [
        threading.Thread(target=read_streams, name=f"stac-stream-{number}", daemon=True)
        for number in range(max(1, min(concurrency, len(streams))))
    ]
    for reader in readers:
        reader.start()
    try:
        running = len(readers)
        while running:
            entry = ready.get()
            if entry is _READER_DONE:
                running -= 1
            elif isinstance(entry, BaseException):
                raise entry
            else:
                yield entry
    finally:
        stopped.set()
