"""Which column of an item table holds each property, so that no property name can fail a run or take the column
of another.

A property's column is its name as the destination's naming convention writes it (`eo:cloud_cover` becomes
`eo_cloud_cover`). Different names can meet there: `eo:cloud_cover` and `eo_cloud_cover`, `Platform` and
`platform` (snake_case folds case), a property named as one of the table's own columns (`id`, `geometry`,
`bbox_west`, `content_hash`, `_dlt_id`, ...), or two long names whose shortened forms agree. A column belongs to
the first property that fills it; a later one that meets it gets `<column>_2` (then `_3`, ...). The table's own
columns always hold what their names say. Each column records in the dlt schema which property it holds (the
column hint `x-stac-property`), so every package, resource and run that writes the table keeps the same choice.
"""

from __future__ import annotations

from typing import NamedTuple

from dlt.common import logger
from dlt.common.schema import Schema
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID, TColumnSchema, TTableSchemaColumns

PROPERTY_HINT = "x-stac-property"
"""The column hint that names the property a column holds."""
VARIANT_HINT = "x-stac-variant-of"
"""The column hint that names the property whose values of another type a JSON variant column holds."""
DLT_COLUMNS = frozenset({C_DLT_ID, C_DLT_LOAD_ID})
"""dlt's own columns of a table."""


class Holder(NamedTuple):
    """What a column holds: a property's values, a property's values of another type (`hint` is `VARIANT_HINT`), or
    one of the table's own fields (`hint` None)."""

    name: str
    hint: str | None = PROPERTY_HINT

    def describe(self) -> str:
        return f"property `{self.name}`" if self.hint else f"the table's own `{self.name}`"

    def column_hint(self) -> TColumnSchema:
        """The column hint that records this holder in the schema."""
        return {self.hint: self.name} if self.hint else {}  # type: ignore[misc]


class ColumnNames:
    """The columns of one table's properties: those the table's schema records, and those this process gives."""

    def __init__(self, table_name: str, own_columns: frozenset[str], property_columns: frozenset[str]) -> None:
        self.table_name = table_name
        self.own_columns = own_columns
        """Columns of the table itself: no property takes them."""
        self.property_columns = property_columns
        """Own columns that hold the property of the same name (`datetime`, `updated`, ...)."""
        self.columns: dict[str, str] = {}
        """Each property's column, as given so far."""
        self.variants: dict[str, str] = {}
        """Each property's JSON variant column, as given so far."""
        self.holders: dict[str, Holder] = {}
        """What holds each column given so far."""
        self.renamed: set[Holder] = set()
        """The holders said to load into a column of another name in this process."""

    def column_of(self, name: str, schema: Schema) -> str:
        """The column of property `name`."""
        if name not in self.columns:
            self.columns[name] = self._given(name, Holder(name), schema)
        return self.columns[name]

    def variant_of(self, name: str, schema: Schema) -> str:
        """The JSON variant column of property `name`, for its values that cannot share its column's type:
        `<its column>__v_json`, as dlt names variant columns."""
        if name not in self.variants:
            wanted = f"{self.column_of(name, schema)}__v_json"
            self.variants[name] = self._given(wanted, Holder(name, VARIANT_HINT), schema)
        return self.variants[name]

    def _given(self, wanted: str, holder: Holder, schema: Schema) -> str:
        """The column `wanted` names, or the first of its suffixed names that nothing else holds."""
        recorded = recorded_holders(schema, self.table_name)
        plain = schema.naming.normalize_path(wanted)
        column, suffix = plain, 1
        while (held_by := self._holder(column, recorded)) is not None and held_by != holder:
            suffix += 1
            column = schema.naming.normalize_path(f"{plain}_{suffix}")
        self.holders[column] = holder
        if column != plain:
            self._say_renamed(holder, column, plain, self._holder(plain, recorded))
        return column

    def _holder(self, column: str, recorded: dict[str, Holder]) -> Holder | None:
        """What holds `column`; None for a column nothing holds yet."""
        if column in self.property_columns:
            return Holder(column)
        if column in self.own_columns or column in DLT_COLUMNS:
            return Holder(column, hint=None)
        return self.holders.get(column) or recorded.get(column)

    def _say_renamed(self, holder: Holder, column: str, plain: str, plain_holder: Holder | None) -> None:
        """Says once per process which property loads into a column of another name, and why."""
        if holder in self.renamed or plain_holder is None:
            return
        self.renamed.add(holder)
        what = (
            f"Property `{holder.name}` loads"
            if holder.hint == PROPERTY_HINT
            else f"Values of property `{holder.name}` of another type load"
        )
        logger.warning(
            f"{self.table_name}: {what} into column `{column}`, since `{plain}` holds {plain_holder.describe()}."
        )


def table_columns(schema: Schema, table_name: str) -> TTableSchemaColumns:
    """The columns the schema has for the table named `table_name` (which dlt keeps under its normalized name)."""
    return schema.tables.get(schema.naming.normalize_table_identifier(table_name), {}).get("columns", {})


def recorded_holders(schema: Schema, table_name: str) -> dict[str, Holder]:
    """What holds each column of the table, as its schema records it."""
    holders = {}
    for column_name, column in table_columns(schema, table_name).items():
        for hint in (PROPERTY_HINT, VARIANT_HINT):
            if hint in column:
                holders[column_name] = Holder(str(column[hint]), hint)  # type: ignore[literal-required]
    return holders
