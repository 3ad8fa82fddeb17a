"""An HTTP proxy on 127.0.0.1 that forwards to a STAC API and injects faults: error statuses, dropped
connections, answers that break off mid-transfer or arrive cut short, a `next` link that repeats the page, and
the error of a server that cannot sort on some fields. It runs in a thread of the test process.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus, urlsplit

import requests

from stack.local_http import LocalHttpServer, QuietJsonHandler

HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "content-encoding", "keep-alive"}
HELD_AT_MOST_S = 900.0
"""How long a held request waits at most, so that a test that never lets go of it still ends."""
GATHERED_AT_MOST_S = 300.0
"""How long a request of `Faults.gathered` waits at most for the others."""

FaultKind = Literal["status", "drop", "cut", "short"]
"""`status`: answer `Faults.status`. `drop`: close the connection without an answer. `cut`: send the upstream
answer's headers with its whole Content-Length, then half its body, then close the connection. `short`: send
half the body as a complete answer (Content-Length cut to match), which is not JSON."""


@dataclass
class Faults:
    every: int = 0
    """Every `every`-th request gets a fault (0: none); requests counted up to 0 never do."""
    kinds: tuple[FaultKind, ...] = ("status",)
    """The faults sent, in turn."""
    status: int = 503
    retry_after: str | None = "0"
    faults_at_most: int | None = None
    """No faults after this many (None: no limit)."""
    counted_paths: str | None = None
    """Only requests whose path starts with this count (None: all), so that requests sent at once to other
    endpoints cannot change which request gets a fault."""
    repeat_next_on: str | None = None
    """On this path, rewrite each page's `next` link into the request that produced the page."""
    post_refused_on: str | None = None
    """POST requests to this path get 405 Method Not Allowed, as from an API that searches by GET only."""
    features_only: bool = False
    """Hide item search: the landing page and /conformance lose its classes and the `search` links, and /search
    answers 404, as an API that offers only OGC API Features' /collections/{id}/items."""
    refused_sort_fields: str | None = None
    """A search whose `sortby` names a field that this regular expression matches gets the HTTP 500 that
    stac-fastapi-geoparquet 0.0.7 answers to `properties.datetime` (it sorts on `datetime`)."""
    held: threading.Event | None = None
    """Requests wait until it is set, as on a server that has not answered yet (up to `HELD_AT_MOST_S`)."""
    gathered: tuple[tuple[str, ...], ...] = ()
    """Clients that must read at once: a request that carries every string of one of these groups (in its URL
    or body) waits until a request of each group waits, then they all go on and none waits again (each up to
    `GATHERED_AT_MOST_S`, after which it goes on alone)."""
    gathered_at_once: bool = False
    """Whether a request of every group of `gathered` was waiting at one moment."""
    waiting: Counter[int] = field(default_factory=Counter)
    gathering: threading.Condition = field(default_factory=threading.Condition)
    requests_seen: int = 0
    faults_sent: int = 0
    sorts_refused: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    """Every request's method and path, in the order they came."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_turn(self, method: str, path: str) -> FaultKind | None:
        """The fault this request gets, if any."""
        with self.lock:
            self.requests.append((method, path))
            if self.counted_paths is not None and not path.startswith(self.counted_paths):
                return None
            self.requests_seen += 1
            if self.every <= 0 or self.requests_seen <= 0 or self.requests_seen % self.every:
                return None
            if self.faults_at_most is not None and self.faults_sent >= self.faults_at_most:
                return None
            self.faults_sent += 1
            return self.kinds[(self.faults_sent - 1) % len(self.kinds)]

    def wait_for_the_others(self, request: str) -> None:
        """Where `request` (its URL and body) belongs to a group of `gathered`, waits for a request of each."""
        group = next((index for index, strings in enumerate(self.gathered) if all(s in request for s in strings)), None)
        if group is None:
            return
        with self.gathering:
            self.waiting[group] += 1
            if len(+self.waiting) == len(self.gathered):
                self.gathered_at_once = True
                self.gathering.notify_all()
            self.gathering.wait_for(lambda: self.gathered_at_once, GATHERED_AT_MOST_S)
            self.waiting[group] -= 1


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self.http = LocalHttpServer(self._handler())
        self.url = self.http.url

    def __enter__(self) -> FaultProxy:
        self.http.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.http.stop()

    def _handler(self) -> type[QuietJsonHandler]:
        proxy = self

        class Handler(QuietJsonHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def do_DELETE(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.faults.take_turn(self.command, self.path)
                if proxy.faults.held is not None:
                    proxy.faults.held.wait(HELD_AT_MOST_S)
                if proxy.faults.gathered and not proxy.faults.gathered_at_once:
                    proxy.faults.wait_for_the_others(unquote_plus(self.path) + body.decode(errors="replace"))
                if fault in ("status", "drop"):
                    self._send_fault(fault)
                    return
                path = urlsplit(self.path).path
                if proxy.faults.features_only and path.rstrip("/") == "/search":
                    self.send_json(404, {"detail": "Not Found"})
                    return
                if self.command == "POST" and path == proxy.faults.post_refused_on:
                    self.send_json(405, {"detail": "Method Not Allowed"})
                    return
                if refused := self._refused_sort_field(body):
                    with proxy.faults.lock:
                        proxy.faults.sorts_refused += 1
                    message = f'Binder Error: Referenced column "{refused}" not found in FROM clause!'
                    self.send_json(500, {"code": "BinderException", "description": message})
                    return
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body or None,
                    headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                    timeout=60,
                )
                content = upstream.content.replace(proxy.upstream.encode(), proxy.url.encode())
                if self.path == proxy.faults.repeat_next_on and upstream.ok:
                    content = self._repeating_next_link(content, body)
                if proxy.faults.features_only and path in ("/", "/conformance") and upstream.ok:
                    content = self._without_item_search(content)
                sent = content[: len(content) // 2] if fault in ("cut", "short") else content
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content if fault == "cut" else sent)))
                self.end_headers()
                self.wfile.write(sent)
                if fault == "cut":
                    self.wfile.flush()
                    self._close_abruptly()

            def _send_fault(self, fault: FaultKind) -> None:
                if fault == "drop":
                    self._close_abruptly()
                    return
                self.send_response(proxy.faults.status)
                if proxy.faults.retry_after is not None:
                    self.send_header("Retry-After", proxy.faults.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _without_item_search(self, content: bytes) -> bytes:
                document = json.loads(content)
                document["conformsTo"] = [uri for uri in document.get("conformsTo", []) if "item-search" not in uri]
                if "links" in document:
                    document["links"] = [link for link in document["links"] if link.get("rel") != "search"]
                return json.dumps(document).encode()

            def _refused_sort_field(self, body: bytes) -> str | None:
                """The first field of the search's `sortby` that the server refuses, if any."""
                pattern = proxy.faults.refused_sort_fields
                if pattern is None or urlsplit(self.path).path.rstrip("/").split("/")[-1] not in ("search", "items"):
                    return None
                sortby = json.loads(body).get("sortby") if body else parse_qs(urlsplit(self.path).query).get("sortby")
                fields = [
                    str(entry.get("field", "")) if isinstance(entry, dict) else entry.strip().lstrip("+-")
                    for value in sortby or []
                    for entry in (value.split(",") if isinstance(value, str) else [value])
                ]
                return next((field for field in fields if re.search(pattern, field)), None)

            def _close_abruptly(self) -> None:
                self.close_connection = True
                self.connection.shutdown(2)

            def _repeating_next_link(self, content: bytes, body: bytes) -> bytes:
                page = json.loads(content)
                for link in page.get("links", []):
                    if link.get("rel") == "next":
                        link.update(href=proxy.url + self.path, method=self.command)
                        if body:
                            link["body"] = json.loads(body)
                return json.dumps(page).encode()

        return Handler
