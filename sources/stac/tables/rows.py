"""The table layer: STAC items and collections as rows, and the column hints of their tables.

Items follow the stac-geoparquet layout: `id`, `collection`, `geometry` and `bbox` first, then the other
top-level keys (`assets`, `links`, `type`, `stac_version`, `stac_extensions`), then every key of `properties`
lifted to a column of its own. Nested values stay JSON columns (the source sets `max_table_nesting=0`), so the
tables do not depend on the data: no child table is ever named after an asset key. Last comes `content_hash`, a
digest of the item as the API served it (its `links` aside, which servers write for each request), by which a
reconcile run tells an edited item from an unchanged one; and `_stac_deleted`, which only the rows that tell
dlt's merge to delete an item (or a collection) set.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import orjson
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from ..errors import MalformedItem
from ..timestamps import parse_timestamp

ITEM_KEYS = ("id", "collection", "geometry", "bbox", "assets", "links", "type", "stac_version", "stac_extensions")
"""The item's top-level keys, in the order of the table's first columns."""
TIMESTAMP_PROPERTIES = ("datetime", "start_datetime", "end_datetime", "created", "updated")
BBOX_CORNERS = ("bbox_west", "bbox_south", "bbox_east", "bbox_north")
"""A bbox as four typed columns, for filters that need no JSON (`bbox` keeps it whole)."""
PROPERTIES = "properties"
"""The key of an item's row that holds its properties as served, each to the column `column_names.py` gives it."""
CONTENT_HASH = "content_hash"
DELETED = "_stac_deleted"
"""Set on a row that deletes its item or collection from the table (dlt's `hard_delete` hint)."""


def json_column() -> TColumnSchema:
    return {"data_type": "json"}


def timestamp_column() -> TColumnSchema:
    return {"data_type": "timestamp", "timezone": True}


def deleted_column() -> TColumnSchema:
    return {"data_type": "bool", "hard_delete": True}


ITEM_COLUMNS: TTableSchemaColumns = {
    "id": {"data_type": "text", "nullable": False},
    "collection": {"data_type": "text", "nullable": False},
    **{name: json_column() for name in ("geometry", "bbox", "assets", "links")},
    **{name: {"data_type": "text"} for name in ("type", "stac_version")},
    "stac_extensions": json_column(),
    **{name: timestamp_column() for name in TIMESTAMP_PROPERTIES},
    **{name: {"data_type": "double"} for name in BBOX_CORNERS},
    CONTENT_HASH: {"data_type": "text"},
    DELETED: deleted_column(),
}
COLLECTION_COLUMNS: TTableSchemaColumns = {
    "id": {"data_type": "text", "nullable": False},
    **{name: {"data_type": "double"} for name in BBOX_CORNERS},
    **{name: timestamp_column() for name in ("temporal_start", "temporal_end")},
    **{
        name: json_column()
        for name in ("keywords", "providers", "extent", "summaries", "item_assets", "links", "stac_extensions")
    },
    DELETED: deleted_column(),
}
REJECTED_ITEM_COLUMNS: TTableSchemaColumns = {
    "rejection_id": {"data_type": "text", "nullable": False},
    "collection": {"data_type": "text"},
    "item_id": {"data_type": "text"},
    "reason": {"data_type": "text", "nullable": False},
    "page_url": {"data_type": "text", "nullable": False},
    "raw_json": {"data_type": "text", "nullable": False},
    "rejected_at": timestamp_column(),
}


def _timestamp_property(properties: dict[str, Any], name: str) -> datetime | None:
    value = properties.get(name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, TypeError):  # pendulum's ParserError is a ValueError
        raise MalformedItem(f"properties.{name} is not an RFC 3339 timestamp: {value!r}") from None


def item_row(item: Any) -> dict[str, Any]:
    """The row of one item; raises `MalformedItem` for what cannot be a row."""
    if not isinstance(item, dict) or item.get("type") != "Feature":
        found = item.get("type") if isinstance(item, dict) else type(item).__name__
        raise MalformedItem(f"not a GeoJSON Feature (type is {found!r})")
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise MalformedItem("the item has no id")
    properties = item.get("properties")
    if not isinstance(properties, dict):
        raise MalformedItem("the item has no properties object")
    row = {key: item.get(key) for key in ITEM_KEYS}
    for name in TIMESTAMP_PROPERTIES:
        row[name] = _timestamp_property(properties, name)
    row.update(zip(BBOX_CORNERS, bbox_corners(item.get("bbox")), strict=True))
    if row["datetime"] is None and row["start_datetime"] is None:
        raise MalformedItem("properties.datetime is null and there is no properties.start_datetime")
    row[CONTENT_HASH] = content_hash(item)
    row[PROPERTIES] = properties
    return row


def bbox_corners(bbox: Any) -> tuple[float | None, float | None, float | None, float | None]:
    """West, south, east and north of a 2D or 3D bbox (`[w, s, e, n]`, `[w, s, bottom, e, n, top]`); all None for
    anything else."""
    if not isinstance(bbox, list) or len(bbox) not in (4, 6):
        return None, None, None, None
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in bbox):
        return None, None, None, None
    east = len(bbox) // 2
    return float(bbox[0]), float(bbox[1]), float(bbox[east]), float(bbox[east + 1])


def content_hash(document: dict[str, Any]) -> str:
    """A digest of an item's or a collection's content: its JSON as the API wrote it (keys in the API's order),
    `links` left out. Not for security: it is compared with the digest of the document's last load."""
    content = {key: value for key, value in document.items() if key != "links"}
    return hashlib.md5(orjson.dumps(content), usedforsecurity=False).hexdigest()


def rejected_item_row(raw: Any, reason: str, page_url: str, collection: str | None) -> dict[str, Any]:
    """The row of a malformed item; `rejection_id` (a hash of its collection and JSON) is the same each time the
    same item is read, so that `rejected_items` holds it once."""
    item_id = raw.get("id") if isinstance(raw, dict) else None
    collection = (raw.get("collection") if isinstance(raw, dict) else None) or collection
    raw_json = orjson.dumps(raw)
    return {
        "rejection_id": hashlib.sha256(f"{collection}\n".encode() + raw_json).hexdigest(),
        "collection": collection,
        "item_id": item_id if isinstance(item_id, str) else None,
        "reason": reason,
        "page_url": page_url,
        "raw_json": raw_json.decode(),
        "rejected_at": datetime.now(timezone.utc),
    }


def collection_row(collection: dict[str, Any]) -> dict[str, Any]:
    """The row of one collection, with the first spatial bbox and temporal interval as typed columns."""
    extent = collection.get("extent") or {}
    bboxes = (extent.get("spatial") or {}).get("bbox") or [None]
    interval = ((extent.get("temporal") or {}).get("interval") or [[None, None]])[0]
    start, end = (parse_timestamp(value) if value else None for value in interval[:2])
    return {
        **collection,
        **dict(zip(BBOX_CORNERS, bbox_corners(bboxes[0]), strict=True)),
        "temporal_start": start,
        "temporal_end": end,
    }
