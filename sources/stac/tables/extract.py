"""From item pages to dlt items: the rows of a page's items in the window, one Arrow table per page, and the
malformed items as rows of `rejected_items`; the hints that send them to their tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from ..errors import MalformedItem
from .item_tables import ItemTables
from .rows import REJECTED_ITEM_COLUMNS, item_row, rejected_item_row

REJECTED_ITEMS_TABLE = "rejected_items"

AdmittedRow = tuple[dict[str, Any], datetime]
"""An item's row, and its cursor value."""


def page_rows(
    entries: list[Any],
    page_url: str,
    value_of: Callable[[dict[str, Any]], datetime],
    admits: Callable[[dict[str, Any], datetime], bool],
    collection: str | None,
) -> tuple[list[AdmittedRow], list[dict[str, Any]]]:
    """The rows of a page's items that the part read `admits` (by row and cursor value, `value_of` the row: in its
    window, and for a late read not read by another), with their values, and the rows of its malformed items."""
    admitted, rejected = [], []
    for raw in entries:
        try:
            row = item_row(raw)
            value = value_of(row)
        except MalformedItem as reason:
            rejected.append(rejected_item_row(raw, str(reason), page_url, collection))
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


def with_rejected_items_table(resource: DltResource) -> DltResource:
    """Malformed items go to `rejected_items`, merged on `rejection_id`, whatever table the resource loads."""
    return with_merged_table(resource, REJECTED_ITEMS_TABLE, "rejection_id", REJECTED_ITEM_COLUMNS)


def with_merged_table(
    resource: DltResource, table_name: str, primary_key: str | tuple[str, ...], columns: Any
) -> DltResource:
    """The resource's items marked with `table_name` go to that table, merged on `primary_key`.

    A table variant starts as a copy of the resource's hints, so their columns are cleared first.
    """
    resource.apply_hints(table_name=table_name, columns={}, create_table_variant=True)
    return resource.apply_hints(
        table_name=table_name,
        write_disposition="merge",
        primary_key=primary_key,
        columns=columns,
        create_table_variant=True,
    )
