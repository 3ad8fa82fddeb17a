"""The HTTP layer: a pystac-client `StacApiIO` that retries what is worth retrying, for GET and POST, signs
requests to the API's origin, and turns a refusal (401, 403) into an error that says what to do."""

from __future__ import annotations

from typing import Any

import orjson
from pystac import Link
from pystac.stac_io import HREF
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from requests.exceptions import ConnectionError as RequestsConnectionError
from urllib3 import Retry
from urllib3.exceptions import MaxRetryError

from ..auth import Authorizer, mount_bearer_adapter
from ..auth.transport import origin_of
from ..errors import LinkToAnotherOriginRefused, StacSourceError

RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
PROBE_RETRY_STATUSES = (408, 429, 502, 503, 504)
"""A probe of what the server can do is not retried on 500: a server that cannot do it answers so at once and
every time (stac-fastapi-geoparquet to a sort on `properties.datetime`), while 429 and 502-504 pass with time."""
REFUSAL_STATUSES = (401, 403)


def broke_off_mid_transfer(error: APIError) -> bool:
    """Whether the answer's body broke off after its headers arrived (cut, reset or timed out while read).

    urllib3 retries what fails before the headers; a connection error that already went through those retries
    (`MaxRetryError`) is not one of these.
    """
    cause = error.__context__
    if isinstance(cause, (ChunkedEncodingError, ContentDecodingError)):
        return True
    retried_already = bool(cause and cause.args and isinstance(cause.args[0], MaxRetryError))
    return isinstance(cause, RequestsConnectionError) and not retried_already


class SignedStacApiIO(StacApiIO):
    def __init__(self, api_url: str, authorizer: Authorizer, retry: Retry, **kwargs: Any) -> None:
        super().__init__(max_retries=retry, **kwargs)
        self.api_url = api_url
        self.authorizer = authorizer
        self.retry = retry

    def probing(self) -> SignedStacApiIO:
        """A sibling for probes: the same signing and retries, but none on HTTP 500 (`PROBE_RETRY_STATUSES`)."""
        return _signed_io(self.api_url, self.authorizer, self.retry.new(status_forcelist=PROBE_RETRY_STATUSES),
                          self.timeout, connections=1)  # fmt: skip

    def read_json(self, source: HREF, *args: Any, **kwargs: Any) -> Any:
        """The JSON document at `source`; an answer that breaks off mid-transfer, or that arrives whole but is
        not JSON (a body cut short by a proxy that then sent it as complete), is asked for again with the same
        backoff as the other transient faults. After the last retry, the `APIError` or the `JSONDecodeError`."""
        retry = self.retry
        while True:
            try:
                return orjson.loads(self.read_text(source, *args, **kwargs))
            except APIError as error:
                if not broke_off_mid_transfer(error):
                    raise
                fault: Exception = error
            except orjson.JSONDecodeError as error:
                fault = error
            retry = self._next_retry(retry, source, fault)

    def _next_retry(self, retry: Retry, source: HREF, fault: Exception) -> Retry:
        """`retry` counted once more, after its backoff; raises `fault` when no retry is left."""
        url = source.href if isinstance(source, Link) else str(source)
        try:
            retry = retry.increment(url=url, error=fault)
        except MaxRetryError:
            raise fault from None
        retry.sleep()
        return retry

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
) -> SignedStacApiIO:
    """A `StacApiIO` whose requests retry on 408, 429 (honouring Retry-After), 5xx, connection errors, timeouts and
    answers that break off mid-transfer, and carry the authorizer's token to `api_url`'s origin only; it keeps up
    to `connections` (at least 10) connections per host open, one for each request sent at the same time.

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
    return _signed_io(api_url, authorizer, retry, timeout_s, connections)


def _signed_io(
    api_url: str, authorizer: Authorizer, retry: Retry, timeout_s: float | None, connections: int
) -> SignedStacApiIO:
    io = SignedStacApiIO(api_url, authorizer, retry, timeout=timeout_s)
    mount_bearer_adapter(io.session, api_url, authorizer, max_retries=retry, pool_maxsize=max(10, connections))
    return io
