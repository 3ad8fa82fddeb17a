"""From item pages to dlt items: one Arrow table per page of new items, and the rejected items as rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dlt

from sources.stac.errors import MalformedItem
from sources.stac.paging import Page
from sources.stac.rows import item_cursor, item_row, rejected_item_row
from sources.stac.tables import ItemTables
from sources.stac.windows import WindowFilter

REJECTED_ITEMS_TABLE = "rejected_items"


def tables_of_pages(
    pages: Iterable[Page],
    window: WindowFilter,
    tables: ItemTables,
    collection: str | None = None,
    max_items: int | None = None,
) -> Iterator[Any]:
    """Yields each page's new items as one Arrow table, and its malformed items to `rejected_items`."""
    taken = 0
    for page in pages:
        admitted, rejected = [], []
        for raw in page.entries:
            try:
                row = item_row(raw)
            except MalformedItem as reason:
                rejected.append(rejected_item_row(raw, str(reason), page.url, collection))
                continue
            cursor = item_cursor(row)
            if window.admits(cursor, row["id"]):
                admitted.append((row, cursor))
        if max_items is not None:
            admitted = admitted[: max_items - taken]
            taken += len(admitted)
        for row, cursor in admitted:
            window.record(cursor, row["id"])
        if admitted:
            table, new_json_columns = tables.table([row for row, _ in admitted])
            yield (
                dlt.mark.with_hints(table, dlt.mark.make_hints(columns=new_json_columns)) if new_json_columns else table
            )
        if rejected:
            yield dlt.mark.with_table_name(rejected, REJECTED_ITEMS_TABLE)
        if max_items is not None and taken >= max_items:
            return
