"""Item rows as one Arrow table per page, so that dlt writes Parquet as it is instead of normalizing row by row.

Nested values become JSON text in columns hinted `json`; JSON numbers become doubles, as JSON has a single
number type, so that a column never changes type between pages (cloud cover 0 on one page, 12.5 on the next).
A column whose values cannot share one Arrow type, or that a later page fills with values of another type
than the first, is kept as JSON text in a column of its own, `<name>__v_json`, as dlt names variant columns.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.schema.typing import TTableSchemaColumns

from .rows import ITEM_COLUMNS, TIMESTAMP_PROPERTIES

JSON_COLUMNS = frozenset(name for name, column in ITEM_COLUMNS.items() if column.get("data_type") == "json")
REQUIRED_COLUMNS = frozenset(name for name, column in ITEM_COLUMNS.items() if column.get("nullable") is False)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class JsonTextHintNotice(logging.Filter):
    """Drops dlt's warning, repeated for every page, that the `json` hint of a column overrides the Arrow `string`
    that holds its JSON text: that is how JSON columns travel in Arrow here, and the destination reads it as JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


def quiet_json_text_hints() -> None:
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(existing, JsonTextHintNotice) for existing in dlt_logger.filters):
        dlt_logger.addFilter(JsonTextHintNotice())


def json_texts(values: list[Any]) -> pa.Array:
    return pa.array([None if value is None else orjson.dumps(value).decode() for value in values], pa.string())


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
    """Builds each page's table; a column keeps the Arrow type of the first page that filled it (None: JSON)."""

    def __init__(self) -> None:
        self.types: dict[str, pa.DataType | None] = {}
        self.hinted: set[str] = set()

    def table(self, rows: list[dict[str, Any]]) -> tuple[pa.Table, TTableSchemaColumns]:
        """The page's table, and `json` hints for the JSON columns that it is the first to hold."""
        arrays: dict[str, pa.Array] = {}
        new_hints: TTableSchemaColumns = {}
        for name in dict.fromkeys(name for row in rows for name in row):
            column, array, is_json = self._column(name, [row.get(name) for row in rows])
            if array.null_count == len(array):
                continue  # the first page with a value creates the column
            arrays[column] = array
            if is_json and column not in self.hinted and column not in ITEM_COLUMNS:
                new_hints[column] = {"data_type": "json"}
                self.hinted.add(column)
        fields = [pa.field(name, array.type, nullable=name not in REQUIRED_COLUMNS) for name, array in arrays.items()]
        return pa.Table.from_arrays(list(arrays.values()), schema=pa.schema(fields)), new_hints

    def _column(self, name: str, values: list[Any]) -> tuple[str, pa.Array, bool]:
        if name in TIMESTAMP_PROPERTIES:
            return name, pa.array(values, TIMESTAMP_TYPE), False
        if name in JSON_COLUMNS:
            return name, json_texts(values), True
        array = scalar_array(values)
        if array is not None:
            if array.type == pa.null():
                return name, array, False
            known = self.types.setdefault(name, array.type)
            if known == array.type:
                return name, array, False
            if known is not None:
                try:
                    return name, array.cast(known, safe=True), False
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
        json_name = name if self.types.setdefault(name, None) is None else f"{name}__v_json"
        return json_name, json_texts(values), True
