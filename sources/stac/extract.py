"""From item pages to dlt items: one Arrow table per page of new items, and the rejected items as rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dlt

from sources.stac.errors import MalformedItem
from sources.stac.paging import Page
from sources.stac.rows import item_cursor, item_row, rejected_item_row
from sources.stac.streams import ItemStream
from sources.stac.tables import ItemTables

REJECTED_ITEMS_TABLE = "rejected_items"


def tables_of_pages(
    pages: Iterable[tuple[ItemStream, Page]], tables: ItemTables, max_items: int | None = None
) -> Iterator[Any]:
    """Yields each page's new items as one Arrow table, and its malformed items to `rejected_items`.

    An item the server returns again (on another page, or to another stream) is yielded once, as the
    `items` table merges without deduplicating; the keys of the run's items stay in memory for that,
    about 100 bytes per item.
    """
    taken = 0
    loaded: set[tuple[str | None, str]] = set()
    for stream, page in pages:
        admitted, rejected = [], []
        for raw in page.entries:
            try:
                row = item_row(raw)
            except MalformedItem as reason:
                rejected.append(rejected_item_row(raw, str(reason), page.url, stream.collection))
                continue
            cursor, key = item_cursor(row), (row["collection"], row["id"])
            if stream.window_filter.admits(cursor, row["id"]) and key not in loaded:
                loaded.add(key)
                admitted.append((row, cursor))
        if max_items is not None:
            admitted = admitted[: max_items - taken]
            taken += len(admitted)
        for row, cursor in admitted:
            stream.window_filter.record(cursor, row["id"])
        if admitted:
            table, new_json_columns = tables.table([row for row, _ in admitted])
            yield (
                dlt.mark.with_hints(table, dlt.mark.make_hints(columns=new_json_columns)) if new_json_columns else table
            )
        if rejected:
            yield dlt.mark.with_table_name(rejected, REJECTED_ITEMS_TABLE)
        if max_items is not None and taken >= max_items:
            return
