"""Errors that tell the user what went wrong, where, and what to do about it."""

from __future__ import annotations


class StacSourceError(Exception):
    """Base of every error this source raises on purpose."""


class StacApiUnreachable(StacSourceError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"Could not reach the STAC API at {url}: {reason}. Check the URL (it must be the API's landing page) "
            "and that the server is up."
        )


class NotAStacApi(StacSourceError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url} is not a STAC API landing page: {reason}. Point `url` at the API's root.")


class MissingConformance(StacSourceError):
    def __init__(self, url: str, capability: str, needed_for: str) -> None:
        super().__init__(f"The STAC API at {url} does not conform to {capability}, which {needed_for} needs.")


class UnknownCollections(StacSourceError):
    def __init__(self, url: str, unknown: list[str], existing: list[str]) -> None:
        names = sorted(existing)
        shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
        super().__init__(
            f"Unknown collection(s) {', '.join(unknown)} at {url}. The API has: {shown or 'no collections'}."
        )


class InvalidSearch(StacSourceError):
    def __init__(self, search_name: str, reason: str) -> None:
        super().__init__(f"Search `{search_name}` has invalid parameters: {reason}")


class BadPage(StacSourceError):
    def __init__(self, page_url: str, reason: str) -> None:
        super().__init__(f"The STAC API sent a page that cannot be read at {page_url}: {reason}")


class MalformedItem(ValueError):
    """An item that cannot become a row; it goes to the `rejected_items` table instead."""
