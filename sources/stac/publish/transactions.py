"""The HTTP layer of publishing: a STAC API's Transactions endpoints (and the bulk items endpoint where the API
has one), signed and retried as the source's reads are. It knows items and collections as JSON, nothing of tables.

Every write is idempotent: items are upserted (POST, then PUT when the API answers 409 because the item exists, or
one bulk `upsert`), deletions of what is already gone succeed. So a publish that is cut off and run again ends
with each item once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import requests
from urllib3 import Retry
from urllib3.exceptions import MaxRetryError

from ..auth import Authorizer, mount_bearer_adapter
from ..errors import BadPage, StacSourceError
from ..server import RETRY_STATUSES, iter_pages, stac_api_io
from .checks import published_content

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
NO_BULK_ENDPOINT = (404, 405)


class PublishRefused(StacSourceError):
    def __init__(self, collection_id: str, url: str, status: int, detail: str) -> None:
        super().__init__(
            f"The STAC API refused to write collection `{collection_id}` (HTTP {status} at {url}): {detail}. "
            "On terrabyte you may write only collections whose id starts with your user name or a DSS container "
            "of yours and a dot; check the collection id, or ask the container's managers for write access."
        )


class WriteRejected(StacSourceError):
    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        super().__init__(f"The STAC API rejected {method} {url} (HTTP {status}): {detail}")


class PublishFailed(StacSourceError):
    def __init__(self, method: str, url: str, status: int | None, detail: str) -> None:
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(
            f"{method} {url} failed after its retries ({answer}): {detail}. Nothing is lost: run the publish again "
            "and it goes on where this one stopped."
        )


@dataclass(frozen=True)
class Rejection:
    """An item the API would not take (a 4xx of its own), or that was not sent because it is not valid STAC."""

    collection: str
    item_id: str | None
    reason: str
    deletion: bool = False
    """Whether the API refused to delete the item, rather than to take it."""


def answer_detail(response: requests.Response) -> str:
    """What the server said about a refusal, short: FastAPI's validation errors as `where: what` each."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    detail = body.get("detail") or body.get("description") or body if isinstance(body, dict) else body
    if isinstance(detail, list):
        detail = "; ".join(_validation_error(error) for error in detail)
    return str(detail)[:500]


def _validation_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc") or [])
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


class StacTransactions:
    """The write endpoints of the STAC API at `api_url`."""

    def __init__(self, api_url: str, authorizer: Authorizer, max_retries: int, backoff_factor: float, timeout_s: float):
        self.api_url = api_url.rstrip("/")
        self.authorizer = authorizer
        self.timeout_s = timeout_s
        self.session = requests.Session()
        retry = Retry(total=max_retries, backoff_factor=backoff_factor, status_forcelist=RETRY_STATUSES,
                      allowed_methods=None, respect_retry_after_header=True, raise_on_status=False)  # fmt: skip
        mount_bearer_adapter(self.session, api_url, authorizer, max_retries=retry)
        self.retry = retry
        self.reading_io = stac_api_io(api_url, authorizer, max_retries, backoff_factor, timeout_s)
        """How the collection's items are read: as the source reads pages."""
        self.has_bulk_items: bool | None = None
        """Whether the API has `/collections/{id}/bulk_items`; None until the first bulk write tells."""

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        """The collection as the API holds it, or None when it has none of that id."""
        response = self._send("GET", self._collection_url(collection_id), collection_id)
        return None if response.status_code == 404 else self._checked(response, collection_id).json()

    def create_collection(self, document: dict[str, Any]) -> None:
        """Creates the collection; one that exists already (a retry of a creation whose answer was lost) is
        replaced."""
        response = self._send("POST", f"{self.api_url}/collections", document["id"], document)
        if response.status_code == 409:
            self.update_collection(document)
            return
        self._checked(response, document["id"])

    def update_collection(self, document: dict[str, Any]) -> None:
        url = self._collection_url(document["id"])
        self._checked(self._send("PUT", url, document["id"], document), document["id"])

    def delete_collection(self, collection_id: str) -> bool:
        """Deletes the collection and its items; False when the API had no such collection."""
        response = self._send("DELETE", self._collection_url(collection_id), collection_id)
        if response.status_code == 404:
            return False
        self._checked(response, collection_id)
        return True

    def items(self, collection_id: str, page_size: int) -> Iterator[dict[str, Any]]:
        """Every item of the collection as the API holds it, paged as the source pages (`server/paging.py`, with its
        retries); none when the collection is missing."""
        url = f"{self._collection_url(collection_id)}/items"
        try:
            for page in iter_pages(self.reading_io, url, "features", parameters={"limit": page_size}):
                yield from page.entries
        except BadPage as error:
            if error.status != 404:
                raise

    def upsert_items(self, collection_id: str, items: list[dict[str, Any]]) -> list[Rejection]:
        """Creates or replaces the items in the collection; the ones the API refused, with its reasons."""
        if not items:
            return []
        if self.has_bulk_items is not False:
            rejections = self._bulk_upsert(collection_id, items)
            if rejections is not None:
                return rejections
        return [rejection for item in items if (rejection := self._upsert_one(collection_id, item))]

    def delete_item(self, collection_id: str, item_id: str) -> Rejection | None:
        """Deletes the item (gone already counts as deleted); a rejection when the API refuses."""
        response = self._send("DELETE", self._item_url(collection_id, item_id), collection_id)
        if response.status_code == 404:
            return None
        rejection = self._rejection(response, collection_id, item_id)
        return rejection and Rejection(collection_id, item_id, rejection.reason, deletion=True)

    def _bulk_upsert(self, collection_id: str, items: list[dict[str, Any]]) -> list[Rejection] | None:
        """The bulk endpoint's answer, or None when the items must go one by one: the API has no bulk endpoint,
        or it refused the whole batch (one bad item among them), so that one bad item does not fail the rest."""
        body = {"items": {item["id"]: published_content(item, collection_id) for item in items}, "method": "upsert"}
        response = self._send("POST", f"{self._collection_url(collection_id)}/bulk_items", collection_id, body)
        if response.status_code in NO_BULK_ENDPOINT and self.has_bulk_items is None:
            self.has_bulk_items = False
            return None
        if 400 <= response.status_code < 500 and response.status_code not in (401, 403):
            return None
        answer = self._checked(response, collection_id).json()
        self.has_bulk_items = True
        errors = answer.get("errors") if isinstance(answer, dict) else None
        return [
            Rejection(collection_id, error.get("id"), f"refused by the API: {error.get('msg')}")
            for error in errors or []
        ]

    def _upsert_one(self, collection_id: str, item: dict[str, Any]) -> Rejection | None:
        content = published_content(item, collection_id)
        response = self._send("POST", f"{self._collection_url(collection_id)}/items", collection_id, content)
        if response.status_code == 409:
            url = self._item_url(collection_id, item["id"])
            response = self._send("PUT", url, collection_id, content)
        return self._rejection(response, collection_id, item["id"])

    def _rejection(self, response: requests.Response, collection_id: str, item_id: str) -> Rejection | None:
        if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 408, 429):
            reason = f"refused by the API (HTTP {response.status_code}): {answer_detail(response)}"
            return Rejection(collection_id, item_id, reason)
        self._checked(response, collection_id)
        return None

    def _checked(self, response: requests.Response, collection_id: str) -> requests.Response:
        """`response` when it succeeded; otherwise the error that says what to do."""
        status = response.status_code
        if status < 400:
            return response
        if status == 401:
            raise self.authorizer.refusal(response.url, status)
        if status == 403:
            raise PublishRefused(collection_id, response.url, status, answer_detail(response))
        if status < 500 and status not in (408, 429):
            raise WriteRejected(response.request.method or "", response.url, status, answer_detail(response))
        raise PublishFailed(response.request.method or "", response.url, status, answer_detail(response))

    def _send(self, method: str, url: str, collection_id: str, body: Any = None) -> requests.Response:
        """The API's answer; an answer that breaks off after its headers (which urllib3 does not retry), or that
        arrives whole but is not JSON, is asked for again with the same backoff: every write is idempotent."""
        data = None if body is None else orjson.dumps(body)
        retry = self.retry
        while True:
            try:
                response = self.session.request(method, url, data=data, headers=JSON_HEADERS, timeout=self.timeout_s)
                if response.ok and response.content:
                    orjson.loads(response.content)
                return response
            except orjson.JSONDecodeError:  # cut short by a proxy that then sent it as complete
                retry = self._next_retry(retry, method, url, requests.exceptions.InvalidJSONError("not JSON"))
            except requests.RequestException as error:
                retry = self._next_retry(retry, method, url, error)

    @staticmethod
    def _next_retry(retry: Retry, method: str, url: str, error: requests.RequestException) -> Retry:
        """`retry` counted once more, after its backoff; `PublishFailed` when none is left, or when urllib3 has
        spent them already (a connection error after its retries)."""
        next_retry: Retry | None = None
        if not (error.args and isinstance(error.args[0], MaxRetryError)):
            with contextlib.suppress(MaxRetryError):
                next_retry = retry.increment(method=method, url=url, error=error)
        if next_retry is None:
            raise PublishFailed(method, url, None, type(error).__name__) from None
        next_retry.sleep()
        return next_retry

    def _collection_url(self, collection_id: str) -> str:
        return f"{self.api_url}/collections/{quote(collection_id, safe='')}"

    def _item_url(self, collection_id: str, item_id: str) -> str:
        return f"{self._collection_url(collection_id)}/items/{quote(item_id, safe='')}"
