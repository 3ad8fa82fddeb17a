"""The HTTP layer: a pystac-client `StacApiIO` that retries what is worth retrying, for GET and POST."""

from __future__ import annotations

from pystac_client.stac_api_io import StacApiIO
from urllib3 import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)


def retrying_stac_io(max_retries: int, backoff_factor: float, timeout_s: float) -> StacApiIO:
    """A `StacApiIO` whose requests retry on 429 (honouring Retry-After), 5xx, connection errors and timeouts.

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
    return StacApiIO(max_retries=retry, timeout=timeout_s)
