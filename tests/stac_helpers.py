"""What the source tests share: reading the destination back, and writing to the API's Transactions endpoint."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import dlt
import requests


def query(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """Runs `sql` in the pipeline's dataset; `{table}` names are qualified."""
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql.format_map(_Qualified(client))) or []]


class _Qualified(dict):
    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client

    def __missing__(self, table: str) -> str:
        return str(self.client.make_qualified_table_name(table))


def loaded_ids(pipeline: dlt.Pipeline, table: str = "items") -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for collection, item_id in query(pipeline, f"SELECT collection, id FROM {{{table}}}"):
        ids[collection].add(item_id)
    return dict(ids)


def column_types(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    """The table's columns and their types, in the table's order."""
    return dict(
        query(
            pipeline,
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = '{pipeline.dataset_name}' AND table_name = '{table}' ORDER BY ordinal_position",
        )
    )


SOUTH_ALABAMA_BOX = (-87.5, 30.3, -86.5, 30.8)


def naip_in_box(pipeline: dlt.Pipeline, west: float, south: float, east: float, north: float) -> set[str]:
    """docs/tables.md's bbox query: the naip items whose bbox overlaps a box; the same SQL on DuckDB and Postgres."""
    found = query(
        pipeline,
        f"SELECT id FROM {{items}} WHERE collection = 'naip' AND bbox_east >= {west} AND bbox_west <= {east}"
        f" AND bbox_north >= {south} AND bbox_south <= {north}",
    )
    return {item_id for (item_id,) in found}


def overlapping(items: Any, west: float, south: float, east: float, north: float) -> set[str]:
    """The ids of the items whose bbox overlaps a box, from their JSON."""
    return {
        item["id"]
        for item in items
        if item["bbox"][2] >= west and item["bbox"][0] <= east and item["bbox"][3] >= south and item["bbox"][1] <= north
    }


def image_hrefs(pipeline: dlt.Pipeline) -> dict[str, str]:
    """docs/tables.md's query for asset hrefs by asset key; the same SQL runs on DuckDB and Postgres."""
    return dict(query(pipeline, "SELECT id, assets -> 'image' ->> 'href' FROM {items} WHERE collection = 'naip'"))


def rows_loaded(pipeline: dlt.Pipeline, table: str = "items") -> int:
    return int(pipeline.last_trace.last_normalize_info.row_counts.get(table, 0))


def resource_state(pipeline: dlt.Pipeline, resource: str = "items") -> dict[str, Any]:
    """The resource's state as the pipeline keeps it; empty before anything was committed."""
    resources = pipeline.state.get("sources", {}).get("stac", {}).get("resources", {})
    return dict(resources.get(resource, {}))


def items_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The checkpoint of each collection: its cursor, and the parts of its window left to read."""
    return dict(resource_state(pipeline).get("cursors", {}))


def create_collection(api_url: str, template: dict[str, Any], collection_id: str) -> None:
    document = {
        **copy.deepcopy(template),
        "id": collection_id,
        "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
    }
    response = requests.post(f"{api_url}/collections", json=document, timeout=30)
    assert response.status_code in (200, 201), response.text


def new_collection(api_url: str, template: dict[str, Any], collection_id: str, items: list[dict[str, Any]]) -> str:
    """A collection of its own, shaped as `template`, holding `items`: for a test that writes to the API."""
    create_collection(api_url, template, collection_id)
    add_items(api_url, collection_id, items)
    return collection_id


def add_items(api_url: str, collection_id: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        body = {**copy.deepcopy(item), "collection": collection_id, "links": []}
        response = requests.post(f"{api_url}/collections/{collection_id}/items", json=body, timeout=30)
        assert response.status_code in (200, 201), response.text


def replace_item(api_url: str, collection_id: str, item: dict[str, Any]) -> None:
    """Updates an item in place (Transactions PUT), as an edit of the catalog does."""
    body = {**copy.deepcopy(item), "collection": collection_id, "links": []}
    response = requests.put(f"{api_url}/collections/{collection_id}/items/{item['id']}", json=body, timeout=30)
    assert response.status_code == 200, response.text


def with_updated(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of `items` that carry `updated`, each a minute after the one before from 2024-03-01T00:00:00Z."""
    copies = copy.deepcopy(items)
    for minute, item in enumerate(copies):
        item["properties"]["updated"] = f"2024-03-01T{minute // 60:02d}:{minute % 60:02d}:00Z"
    return copies


def replace_collection(api_url: str, collection: dict[str, Any]) -> None:
    """Updates a collection in place (Transactions PUT)."""
    response = requests.put(f"{api_url}/collections/{collection['id']}", json=collection, timeout=30)
    assert response.status_code == 200, response.text


def delete_item(api_url: str, collection_id: str, item_id: str) -> None:
    response = requests.delete(f"{api_url}/collections/{collection_id}/items/{item_id}", timeout=30)
    assert response.status_code in (200, 204), response.text


def delete_collection(api_url: str, collection_id: str) -> None:
    response = requests.delete(f"{api_url}/collections/{collection_id}", timeout=30)
    assert response.status_code in (200, 204), response.text
