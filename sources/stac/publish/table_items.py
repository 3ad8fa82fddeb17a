"""Items and collections read back from the tables that the `stac` source loaded (into DuckDB or Postgres), as the
STAC JSON they were: each property from the column the schema records it in (`x-stac-property`, and its JSON
variant column), timestamps as RFC 3339 again, JSON columns parsed, PostGIS geometries as GeoJSON; the columns the
source adds (bbox corners, `content_hash`, dlt's) left out. Read a page of rows at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import dlt
import orjson
from dlt.common.schema.typing import TTableSchemaColumns

from ..tables.column_names import PROPERTY_HINT, VARIANT_HINT, table_columns
from ..tables.rows import BBOX_CORNERS, CONTENT_HASH, DELETED, ITEM_KEYS, TIMESTAMP_PROPERTIES

POSTGIS_HINT = "x-postgres-geometry"
ADDED_COLUMNS = frozenset({*BBOX_CORNERS, CONTENT_HASH, DELETED, "temporal_start", "temporal_end"})
"""Columns the source adds to what the API served."""


def rfc3339(value: datetime) -> str:
    """A timestamp as STAC writes it: UTC with `Z`, fractions of a second only where there are some."""
    text = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def json_value(value: Any) -> Any:
    """A JSON column's value: DuckDB gives its text, Postgres the parsed value."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def plain_value(value: Any, column: dict[str, Any]) -> Any:
    if column.get("data_type") == "json":
        return json_value(value)
    return rfc3339(value) if isinstance(value, datetime) else value


def item_of_row(row: dict[str, Any], columns: TTableSchemaColumns) -> dict[str, Any]:
    """The STAC item a row of an item table holds."""
    item = {key: json_value(row[key]) if columns.get(key, {}).get("data_type") == "json" else row[key]
            for key in ITEM_KEYS if row.get(key) is not None}  # fmt: skip
    properties: dict[str, Any] = {"datetime": None}
    for name in TIMESTAMP_PROPERTIES:
        if row.get(name) is not None:
            properties[name] = rfc3339(row[name])
    for column_name, value in row.items():
        column = columns.get(column_name, {})
        if value is None or column_name in ADDED_COLUMNS:
            continue
        if PROPERTY_HINT in column:
            properties[column[PROPERTY_HINT]] = plain_value(value, column)  # type: ignore[literal-required]
        elif VARIANT_HINT in column:
            properties[column[VARIANT_HINT]] = json_value(value)  # type: ignore[literal-required]
    item.setdefault("geometry", None)
    item["properties"] = properties
    return item


def collection_of_row(row: dict[str, Any], columns: TTableSchemaColumns) -> dict[str, Any]:
    """The STAC collection a row of the `collections` table holds (its keys as dlt named its columns)."""
    return {
        name: plain_value(value, columns.get(name, {}))
        for name, value in row.items()
        if value is not None and name not in ADDED_COLUMNS and not name.startswith("_dlt_")
    }


def _selected_columns(columns: TTableSchemaColumns, quote: Any) -> str:
    return ", ".join(
        f"ST_AsGeoJSON({quote(name)})::jsonb AS {quote(name)}" if column.get(POSTGIS_HINT) else quote(name)
        for name, column in columns.items()
        if not name.startswith("_dlt_")
    )


def table_rows(
    pipeline: dlt.Pipeline, table_name: str, where: tuple[str, str], page_size: int
) -> Iterator[tuple[dict[str, Any], TTableSchemaColumns]]:
    """The rows of a table of the pipeline's dataset whose column `where[0]` holds `where[1]`, ordered by `id`, a
    page of rows fetched at a time, each with the table's columns."""
    columns = table_columns(pipeline.default_schema, table_name)
    with pipeline.sql_client() as client:
        quote = client.escape_column_name
        table = client.make_qualified_table_name(table_name)
        selected = _selected_columns(columns, quote)
        query = f"SELECT {selected} FROM {table} WHERE {quote(where[0])} = %s ORDER BY {quote('id')}"
        with client.execute_query(query, where[1]) as cursor:
            names = [description[0] for description in cursor.description]
            while page := cursor.fetchmany(page_size):
                for values in page:
                    yield dict(zip(names, values, strict=True)), columns


def table_collection_ids(pipeline: dlt.Pipeline, table_name: str = "items") -> list[str]:
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(table_name)
        return [row[0] for row in client.execute_sql(f"SELECT DISTINCT collection FROM {table} ORDER BY 1") or []]


def table_items(pipeline: dlt.Pipeline, collection_id: str, page_size: int) -> Iterator[dict[str, Any]]:
    """The items of one collection in the pipeline's `items` table."""
    for row, columns in table_rows(pipeline, "items", ("collection", collection_id), page_size):
        yield item_of_row(row, columns)


def table_collection(pipeline: dlt.Pipeline, collection_id: str) -> dict[str, Any] | None:
    """The collection's row of the pipeline's `collections` table, as STAC JSON; None where it has none."""
    rows = table_rows(pipeline, "collections", ("id", collection_id), 1)
    return next((collection_of_row(row, columns) for row, columns in rows), None)
