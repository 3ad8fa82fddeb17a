"""A batch of the `stac_api` destination's rows, written to the API: what each row is (an item or a collection to
upsert, one to delete), and the refusals."""

from __future__ import annotations

from typing import Any

from dlt.common.schema.typing import TTableSchema
from dlt.common.typing import TDataItems

from ..tables.column_names import PROPERTY_HINT
from ..tables.rows import DELETED
from .checks import publish_digest, published_content
from .table_items import collection_of_row, item_of_row
from .transactions import Rejection, StacTransactions

COLLECTIONS_TABLE = "collections"


def shaped_as_the_items_table(table: TTableSchema) -> bool:
    """Whether the table's rows are those of the source's `items` table (properties in columns of their own)."""
    return any(PROPERTY_HINT in column for column in table.get("columns", {}).values())


def batch_refusals(writer: StacTransactions, rows: TDataItems, table: TTableSchema) -> list[Rejection]:
    """Writes the rows: those of a `collections` table as collections, the others as items of the collection they
    name (or of the collection named as their table); a row with `_stac_deleted` set deletes. The items the API
    refused. dlt gives the rows of a Parquet load job (a resource that yields Arrow tables) as an Arrow batch."""
    rows = rows.to_pylist() if hasattr(rows, "to_pylist") else rows
    if table["name"] == COLLECTIONS_TABLE:
        for row in rows:
            _write_collection(writer, row, table)
        return []
    refused: list[Rejection] = []
    upserts: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        collection_id = row.get("collection") or table["name"]
        if row.pop(DELETED, False):
            refused.extend(rejection for rejection in [writer.delete_item(collection_id, row["id"])] if rejection)
            continue
        item = item_of_row(row, table["columns"]) if shaped_as_the_items_table(table) else row
        item.setdefault("geometry", None)  # dlt leaves out the keys whose value is null
        upserts.setdefault(collection_id, []).append(item)
    for collection_id, items in upserts.items():
        refused.extend(writer.upsert_items(collection_id, items))
    return refused


def _write_collection(writer: StacTransactions, row: dict[str, Any], table: TTableSchema) -> None:
    """Creates the collection, or updates it where the API holds it otherwise; deletes it if the row says so."""
    if row.pop(DELETED, False):
        writer.delete_collection(row["id"])
        return
    document = published_content(collection_of_row(row, table["columns"]))
    held = writer.collection(document["id"])
    if held is None:
        writer.create_collection(document)
    elif publish_digest(held) != publish_digest(document):
        writer.update_collection(document)
