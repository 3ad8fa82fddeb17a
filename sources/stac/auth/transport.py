"""The transport that puts the access token on requests to the STAC API's own origin, and on no others.

It adds the Authorization header when a request to that origin is sent (after pystac-client has
logged the request), and after a 401 renews the token and re-sends the request once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from .authorizers import Authorizer

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def with_bearer(request: PreparedRequest, token: str) -> PreparedRequest:
    """A copy of `request` that carries `token`: the caller's request stays as it was."""
    authorized = request.copy()
    authorized.headers["Authorization"] = f"Bearer {token}"
    return authorized


class BearerTokenAdapter(HTTPAdapter):
    def __init__(self, api_url: str, authorizer: Authorizer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.origin = origin_of(api_url)
        self.authorizer = authorizer

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        token = self.authorizer.bearer_token() if origin_of(request.url or "") == self.origin else None
        if token is None:
            return super().send(request, *args, **kwargs)
        response = super().send(with_bearer(request, token), *args, **kwargs)
        if response.status_code != 401:
            return response
        renewed = self.authorizer.renewed_after_refusal(token)
        if renewed is None or renewed == token:
            return response
        response.close()
        return super().send(with_bearer(request, renewed), *args, **kwargs)


def mount_bearer_adapter(session: requests.Session, api_url: str, authorizer: Authorizer, **kwargs: Any) -> None:
    """Sends every request of `session` through a `BearerTokenAdapter`; `kwargs` go to `HTTPAdapter`."""
    adapter = BearerTokenAdapter(api_url, authorizer, **kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
