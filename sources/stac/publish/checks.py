"""What may be published: the checks an item passes before it is sent, and the digest that tells a changed item
from one the API already holds as it is."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..tables.rows import TIMESTAMP_PROPERTIES
from ..timestamps import parse_timestamp
from .files import NotJson

SERVER_WRITTEN_LINKS = frozenset({"self", "root", "parent", "collection", "items", "next", "prev"})
"""Links a server writes for each answer, pointing at itself: not published, so they never point at another API."""


def item_problem(item: Any) -> str | None:
    """Why `item` cannot be published as a STAC item, or None when it can."""
    if isinstance(item, NotJson):
        return f"not JSON: {item.where}"
    if not isinstance(item, dict):
        return f"not a JSON object but {type(item).__name__}"
    if item.get("type") != "Feature":
        return f"not a GeoJSON Feature (type is {item.get('type')!r})"
    if not isinstance(item.get("id"), str) or not item["id"]:
        return "the item has no id"
    if "geometry" not in item:
        return "the item has no geometry key (it may be null, but it must be there)"
    properties = item.get("properties")
    if not isinstance(properties, dict):
        return "the item has no properties object"
    for name in TIMESTAMP_PROPERTIES:
        if properties.get(name) is not None and not _is_timestamp(properties[name]):
            return f"properties.{name} is not an RFC 3339 timestamp: {properties[name]!r}"
    if properties.get("datetime") is None and not (properties.get("start_datetime") and properties.get("end_datetime")):
        return "properties.datetime is null and start_datetime and end_datetime are not both set"
    return None


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def published_content(document: dict[str, Any], collection: str | None = None) -> dict[str, Any]:
    """`document` as it is sent: the links that servers write left out (the others kept, `links` always there, as
    stac-fastapi requires), in `collection` when one is given."""
    links = [link for link in document.get("links") or [] if link.get("rel") not in SERVER_WRITTEN_LINKS]
    content = {**document, "links": links}
    if collection is not None:
        content["collection"] = collection
    return content


def without_nulls(value: Any) -> Any:
    """`value` with every null member of its objects left out, at any depth: stac-fastapi's Transactions store an
    item without its null properties, so a null and a missing member must compare equal."""
    if isinstance(value, dict):
        return {key: without_nulls(member) for key, member in value.items() if member is not None}
    if isinstance(value, list):
        return [without_nulls(member) for member in value]
    return value


def publish_digest(document: dict[str, Any]) -> str:
    """A digest of what `document` publishes, whatever the order of its keys (a server may store and send them in
    another order); its links aside, which servers rewrite, and its null members (`without_nulls`). Not for
    security."""
    content = without_nulls({key: value for key, value in document.items() if key != "links"})
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.md5(canonical, usedforsecurity=False).hexdigest()
