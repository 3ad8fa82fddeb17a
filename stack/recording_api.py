"""A minimal STAC API in a thread that serves fixed JSON documents and records the headers and bodies it received.

For what a real server will not do on request: a page whose `next` link leads to another host, or an API
without item search.
"""

from __future__ import annotations

import json
from typing import Any

from stack.local_http import LocalHttpServer, QuietJsonHandler


class RecordingApi:
    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        """JSON answered per path (query string included; a query string without a document of its own gets
        the path's), for GET and POST alike; `(status, JSON)` for another status than 200."""
        self.received: list[tuple[str, str, str | None]] = []
        """(method, path, Authorization header) of every request."""
        self.posted: list[Any] = []
        """The JSON body of every POST."""
        self.http = LocalHttpServer(_handler_for(self))
        self.url = self.http.url

    def start(self) -> None:
        self.http.start()

    def stop(self) -> None:
        self.http.stop()


def _handler_for(api: RecordingApi) -> type[QuietJsonHandler]:
    class Handler(QuietJsonHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            api.posted.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null"))
            self._answer()

        def _answer(self) -> None:
            api.received.append((self.command, self.path, self.headers.get("Authorization")))
            path = self.path if self.path in api.documents else self.path.partition("?")[0]
            document = api.documents.get(path, (404, {"detail": "not found"}))
            status, body = document if isinstance(document, tuple) else (200, document)
            self.send_json(status, body)

    return Handler
