"""Row shaping of single items: what becomes a row and why the rest is rejected."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from dlt_stac.errors import MalformedItem
from dlt_stac.planning import item_cursor
from dlt_stac.tables.rows import PROPERTIES, collection_row, item_row

ITEM: dict[str, Any] = {
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "a",
    "collection": "c",
    "geometry": {"type": "Point", "coordinates": [11.5, 48.1]},
    "bbox": [11.5, 48.1, 11.5, 48.1],
    "properties": {"datetime": "2024-05-01T10:00:00.123456789+02:00", "eo:cloud_cover": 3.5, "created": None},
    "assets": {"B04": {"href": "s3://b04.tif"}},
    "links": [],
}


def test_properties_are_kept_as_served_and_timestamps_parsed() -> None:
    row = item_row(ITEM)

    assert row["datetime"] == datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=timezone.utc)
    assert row["datetime"].utcoffset() == timedelta(hours=2)
    assert row[PROPERTIES] == ITEM["properties"], "each gets its column in tables/item_tables.py"
    assert row["created"] is None
    assert row["geometry"] == ITEM["geometry"] and row["assets"] == ITEM["assets"]
    assert item_cursor(row) == row["datetime"]


@pytest.mark.parametrize(
    ("bbox", "corners"),
    [
        ([11.0, 48.0, 12.0, 49.0], (11.0, 48.0, 12.0, 49.0)),
        ([11, 48, -5.5, 12, 49, 300.0], (11.0, 48.0, 12.0, 49.0)),  # 3D: west, south, bottom, east, north, top
        ([11.0, 48.0, 12.0], (None, None, None, None)),
        (None, (None, None, None, None)),
        ([11.0, "48", 12.0, 49.0], (None, None, None, None)),
    ],
    ids=["2d", "3d", "three-numbers", "none", "a-string"],
)
def test_an_items_and_a_collections_bbox_become_four_typed_corners(bbox: Any, corners: tuple[Any, ...]) -> None:
    row = item_row({**ITEM, "bbox": bbox})
    collection = collection_row({"id": "c", "extent": {"spatial": {"bbox": [bbox]}}})

    named = ("bbox_west", "bbox_south", "bbox_east", "bbox_north")
    assert tuple(row[name] for name in named) == tuple(collection[name] for name in named) == corners
    assert row["bbox"] == bbox, "the bbox itself stays as it came"


def test_a_date_without_time_or_offset_is_taken_as_midnight_utc() -> None:
    row = item_row({**ITEM, "properties": {"datetime": "2024-05-01"}})

    assert row["datetime"] == datetime(2024, 5, 1, tzinfo=timezone.utc)


def test_range_items_use_start_datetime_as_cursor() -> None:
    item = {**ITEM, "properties": {"datetime": None, "start_datetime": "2020-01-01T00:00:00Z", "end_datetime": None}}

    assert item_cursor(item_row(item)) == datetime(2020, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ([1, 2], "not a GeoJSON Feature (type is 'list')"),
        ({**ITEM, "type": "FeatureCollection"}, "not a GeoJSON Feature (type is 'FeatureCollection')"),
        ({**ITEM, "id": ""}, "the item has no id"),
        ({key: value for key, value in ITEM.items() if key != "id"}, "the item has no id"),
        ({**ITEM, "properties": None}, "the item has no properties object"),
        (
            {**ITEM, "properties": {"datetime": "2024-13-45"}},
            "properties.datetime is not an RFC 3339 timestamp: '2024-13-45'",
        ),
        (
            {**ITEM, "properties": {"datetime": 1714550400}},
            "properties.datetime is not an RFC 3339 timestamp: 1714550400",
        ),
        (
            {**ITEM, "properties": {"datetime": None}},
            "properties.datetime is null and there is no properties.start_datetime",
        ),
    ],
)
def test_malformed_items_say_why(item: Any, reason: str) -> None:
    with pytest.raises(MalformedItem) as raised:
        item_row(item)
    assert str(raised.value) == reason
