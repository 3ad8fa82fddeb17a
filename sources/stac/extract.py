"""From item pages to dlt items: the rows of a page's items in the window, one Arrow table per page, and the
malformed items as rows of `rejected_items`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import dlt

from .cursor_fields import CursorField
from .errors import MalformedItem
from .paging import Page
from .rows import item_row, rejected_item_row
from .tables import ItemTables

REJECTED_ITEMS_TABLE = "rejected_items"

AdmittedRow = tuple[dict[str, Any], datetime]
"""An item's row, and its cursor value."""


def page_rows(
    page: Page, admits: Callable[[dict[str, Any], datetime], bool], cursor_field: CursorField, collection: str | None
) -> tuple[list[AdmittedRow], list[dict[str, Any]]]:
    """The rows of the page's items that the part read `admits` (by row and value of `cursor_field`: in its
    window, and for a late read not read by another), with their values, and the rows of its malformed items."""
    admitted, rejected = [], []
    for raw in page.entries:
        try:
            row = item_row(raw)
            value = cursor_field.value_of(row)
        except MalformedItem as reason:
            rejected.append(rejected_item_row(raw, str(reason), page.url, collection))
            continue
        if admits(row, value):
            admitted.append((row, value))
    return admitted, rejected


def dlt_items(admitted: list[AdmittedRow], rejected: list[dict[str, Any]], tables: ItemTables) -> tuple[list[Any], int]:
    """The admitted rows as one Arrow table (with the hints of its new columns), the rejected rows to
    `rejected_items`; and about how many bytes they hold."""
    items: list[Any] = []
    nbytes = sum(len(row["raw_json"]) for row in rejected)
    if admitted:
        table, new_columns = tables.table([row for row, _ in admitted], dlt.current.source_schema())
        nbytes += table.nbytes
        items.append(dlt.mark.with_hints(table, dlt.mark.make_hints(columns=new_columns)) if new_columns else table)
    if rejected:
        items.append(dlt.mark.with_table_name(rejected, REJECTED_ITEMS_TABLE))
    return items, nbytes
