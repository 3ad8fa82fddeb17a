"""Items and collections as rows and tables, and nothing of HTTP: rows and column hints (`rows.py`), which column
holds each property (`column_names.py`), one Arrow table per page (`item_tables.py`), a page's items to dlt items
and the tables they go to (`extract.py`), and geometry for spatial SQL (`spatial.py`)."""

from .extract import (
    REJECTED_ITEMS_TABLE,
    AdmittedRow,
    dlt_items,
    page_rows,
    with_merged_table,
    with_rejected_items_table,
)
from .item_tables import ItemTables, quiet_json_text_hints
from .rows import (
    COLLECTION_COLUMNS,
    CONTENT_HASH,
    DELETED,
    ITEM_COLUMNS,
    collection_row,
    content_hash,
    item_row,
    rejected_item_row,
)

__all__ = [
    "COLLECTION_COLUMNS",
    "CONTENT_HASH",
    "DELETED",
    "ITEM_COLUMNS",
    "REJECTED_ITEMS_TABLE",
    "AdmittedRow",
    "ItemTables",
    "collection_row",
    "content_hash",
    "dlt_items",
    "item_row",
    "page_rows",
    "quiet_json_text_hints",
    "rejected_item_row",
    "with_merged_table",
    "with_rejected_items_table",
]
