"""Item rows as one Arrow table per page, so that dlt writes Parquet as it is instead of normalizing row by row.

Nested values become JSON text in columns hinted `json`; JSON numbers become doubles, as JSON has a single
number type, so that a column never changes type between pages (cloud cover 0 on one page, 12.5 on the next).
A column whose values cannot share one Arrow type, or that a later page (or run) fills with values of another
type than the table has for it (no value is cast: `true` never becomes 1.0), is kept as JSON text in a column of
its own, `<name>__v_json`, as dlt names variant columns. Which column holds each property is `column_names.py`'s choice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchemaColumns

from .column_names import ColumnNames, table_columns
from .rows import ITEM_COLUMNS, ITEM_KEYS, PROPERTIES, TIMESTAMP_PROPERTIES

JSON_COLUMNS = frozenset(name for name, column in ITEM_COLUMNS.items() if column.get("data_type") == "json")
REQUIRED_COLUMNS = frozenset(name for name, column in ITEM_COLUMNS.items() if column.get("nullable") is False)
OWN_COLUMNS = frozenset(ITEM_COLUMNS)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType | None] = {
    "text": pa.string(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "json": None,
}
"""The Arrow type of a property column of each dlt data type that the pages' tables give their columns."""


class JsonTextHintNotice(logging.Filter):
    """Drops dlt's warning, repeated for every page, that the `json` hint of a column overrides the Arrow `string`
    that holds its JSON text: that is how JSON columns travel in Arrow here, and the destination reads it as JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


def quiet_json_text_hints() -> None:
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(existing, JsonTextHintNotice) for existing in dlt_logger.filters):
        dlt_logger.addFilter(JsonTextHintNotice())


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def json_texts(values: list[Any]) -> pa.Array:
    return pa.array([None if value is None else json_text(value) for value in values], pa.string())


def scalar_array(values: list[Any]) -> pa.Array | None:
    """Arrow's own reading of scalar values, integers widened to doubles; None if they cannot share a type."""
    if any(isinstance(value, (dict, list)) for value in values):
        return None
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    return array.cast(pa.float64()) if pa.types.is_integer(array.type) else array


class ItemTables:
    """Builds the pages' tables of one item table. Each property has its column (`column_names.py`); a column keeps
    the type the table's schema has for it, else the Arrow type of the first page that filled it (None: JSON)."""

    def __init__(self, table_name: str = "items") -> None:
        self.table_name = table_name
        self.names = ColumnNames(table_name, OWN_COLUMNS, frozenset(TIMESTAMP_PROPERTIES))
        self.types: dict[str, pa.DataType | None] = {}
        self.hinted: set[str] = set()

    def table(self, rows: list[dict[str, Any]], schema: Schema) -> tuple[pa.Table, TTableSchemaColumns]:
        """The page's table, and hints for the columns that this process is the first to fill: the property each
        holds, and `json` for JSON columns. `schema` is the table's dlt schema so far."""
        arrays: dict[str, pa.Array] = {}
        new_hints: TTableSchemaColumns = {}
        for name, values, owner in _named_values(rows):
            if values.count(None) == len(values):
                continue  # the first page with a value creates the column
            column, array, is_json = self._column(name, owner, values, schema)
            arrays[column] = array
            if column not in self.hinted and column not in ITEM_COLUMNS:
                new_hints[column] = {
                    **self.names.holders[column].column_hint(),
                    **({"data_type": "json"} if is_json else {}),
                }
                self.hinted.add(column)
        fields = [pa.field(name, array.type, nullable=name not in REQUIRED_COLUMNS) for name, array in arrays.items()]
        return pa.Table.from_arrays(list(arrays.values()), schema=pa.schema(fields)), new_hints

    def _column(self, name: str, owner: str | None, values: list[Any], schema: Schema) -> tuple[str, pa.Array, bool]:
        """The column of the values of `name` (an own column's, or property `owner`'s), as an array of its type."""
        if owner is None:
            return name, own_array(name, values), name in JSON_COLUMNS
        column = self.names.column_of(owner, schema)
        known = self._known_type(column, schema)
        array = scalar_array(values)
        if array is not None and known is not None and known == array.type:
            return column, array, False
        if array is not None and column not in self.types:
            self.types[column] = array.type
            return column, array, False
        if self.types.setdefault(column, None) is None:
            return column, json_texts(values), True
        return self.names.variant_of(owner, schema), json_texts(values), True

    def _known_type(self, column: str, schema: Schema) -> pa.DataType | None:
        """The Arrow type of `column` so far: its type in the table's schema, or of its first page here."""
        if column not in self.types:
            data_type = table_columns(schema, self.names.table_name).get(column, {}).get("data_type")
            if data_type in ARROW_TYPES:
                self.types[column] = ARROW_TYPES[data_type]
        return self.types.get(column)


def own_array(name: str, values: list[Any]) -> pa.Array:
    """The values of one of the table's own columns, as the column's type."""
    data_type = ITEM_COLUMNS[name]["data_type"]
    if data_type == "json":
        return json_texts(values)
    if data_type == "text":
        try:
            return pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a value that is not text: kept as its JSON
            return pa.array(
                [value if isinstance(value, str) or value is None else json_text(value) for value in values]
            )
    return pa.array(values, TIMESTAMP_TYPE if data_type == "timestamp" else pa.float64())


def _named_values(rows: list[dict[str, Any]]) -> Iterator[tuple[str, list[Any], str | None]]:
    """Each column's values, in the table's order: the item's own keys, its properties (the timestamps among them
    typed), then the other columns of the row; with the property they come from (None for the table's own)."""
    for key in ITEM_KEYS:
        yield key, [row[key] for row in rows], None
    properties = dict.fromkeys(name for row in rows for name in row[PROPERTIES])
    typed = [name for name in properties if name in TIMESTAMP_PROPERTIES]
    for name in properties:
        if name in typed:
            yield name, [row[name] for row in rows], None
        else:
            yield name, [row[PROPERTIES].get(name) for row in rows], name
    for key in rows[0]:
        if key not in ITEM_KEYS and key != PROPERTIES and key not in typed:
            yield key, [row[key] for row in rows], None
