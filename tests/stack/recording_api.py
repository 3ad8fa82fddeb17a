"""A minimal STAC API in a thread that serves fixed JSON documents and records the headers it received.

For what a real server will not do on request: a page whose `next` link leads to another host, or an API
without item search.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingApi:
    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        """JSON answered per path (query string included), for GET and POST alike; `(status, JSON)` for another
        status than 200."""
        self.received: list[tuple[str, str, str | None]] = []
        """(method, path, Authorization header) of every request."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _handler_for(api: RecordingApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def _answer(self) -> None:
            api.received.append((self.command, self.path, self.headers.get("Authorization")))
            document = api.documents.get(self.path, (404, {"detail": "not found"}))
            status, body = document if isinstance(document, tuple) else (200, document)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read `api.received`."""

    return Handler
