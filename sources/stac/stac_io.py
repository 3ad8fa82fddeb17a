"""The HTTP layer: a pystac-client `StacApiIO` that retries what is worth retrying, for GET and POST, signs
requests to the API's origin, and turns a refusal (401, 403) into an error that says what to do."""

from __future__ import annotations

from typing import Any

from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3 import Retry

from sources.stac.auth import Authorizer, mount_bearer_adapter
from sources.stac.auth.transport import origin_of
from sources.stac.errors import LinkToAnotherOriginRefused, StacSourceError

RETRY_STATUSES = (429, 500, 502, 503, 504)
REFUSAL_STATUSES = (401, 403)


class SignedStacApiIO(StacApiIO):
    def __init__(self, api_url: str, authorizer: Authorizer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_url = api_url
        self.authorizer = authorizer

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        try:
            return super().request(href, method=method, headers=headers, parameters=parameters)
        except APIError as error:
            if isinstance(error.__context__, StacSourceError):  # raised while signing, e.g. a revoked refresh token
                raise error.__context__ from None
            status = getattr(error, "status_code", None)
            if status in REFUSAL_STATUSES and origin_of(href) != origin_of(self.api_url):
                raise LinkToAnotherOriginRefused(href, self.api_url, status) from None
            if status in REFUSAL_STATUSES:
                raise self.authorizer.refusal(href, status) from None
            raise


def stac_api_io(
    api_url: str,
    authorizer: Authorizer,
    max_retries: int,
    backoff_factor: float,
    timeout_s: float,
    connections: int = 1,
) -> StacApiIO:
    """A `StacApiIO` whose requests retry on 429 (honouring Retry-After), 5xx, connection errors and timeouts,
    and carry the authorizer's token to `api_url`'s origin only; it keeps up to `connections` (at least 10)
    connections per host open, one for each request sent at the same time.

    pystac-client's default retry covers neither 5xx nor POST; search pages are POSTs, and
    re-sending a search page is safe because it reads only.
    """
    retry = Retry(
        total=max_retries,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    io = SignedStacApiIO(api_url, authorizer, max_retries=retry, timeout=timeout_s)
    mount_bearer_adapter(io.session, api_url, authorizer, max_retries=retry, pool_maxsize=max(10, connections))
    return io
