"""Item rows as Arrow tables without a server: a column keeps its first type, numbers are doubles, and values that
cannot share that type go to a `__v_json` variant column."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.common.schema.utils import new_table

from dlt_stac.tables.item_tables import ItemTables
from dlt_stac.tables.rows import ITEM_KEYS, PROPERTIES, TIMESTAMP_PROPERTIES


def rows(*properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Item rows as `item_row` makes them, with these properties."""
    return [
        {**dict.fromkeys((*ITEM_KEYS, *TIMESTAMP_PROPERTIES)), "id": f"i{index}", "collection": "c", PROPERTIES: values}
        for index, values in enumerate(properties)
    ]


def loaded(schema: Schema, table: tuple[pa.Table, TTableSchemaColumns], table_name: str = "items") -> pa.Table:
    """The page's table, its new columns and their hints kept in `schema` as dlt's extract keeps them."""
    arrow, hints = table
    columns = [
        {**column, **hints.get(name, {})} for name, column in py_arrow_to_table_schema_columns(arrow.schema).items()
    ]
    schema.update_table(new_table(schema.naming.normalize_table_identifier(table_name), columns=columns))  # type: ignore[arg-type]
    return arrow


def test_integers_and_doubles_share_one_double_column_across_pages() -> None:
    tables, schema = ItemTables(), Schema("stac")

    first, _ = tables.table(rows({"cloud": 0}, {"cloud": 3}), schema)
    second, _ = tables.table(rows({"cloud": 12.5}), schema)

    assert first.schema.field("cloud").type == second.schema.field("cloud").type == pa.float64()
    assert first.column("cloud").to_pylist() == [0.0, 3.0]
    assert second.column("cloud").to_pylist() == [12.5]


def test_a_later_page_of_another_type_goes_to_a_variant_column_hinted_json() -> None:
    tables, schema = ItemTables(), Schema("stac")
    tables.table(rows({"platform": "landsat-8"}), schema)

    table, hints = tables.table(rows({"platform": {"name": "landsat-9"}}, {"platform": "landsat-7"}), schema)

    assert "platform" not in table.column_names
    assert [json.loads(value) for value in table.column("platform__v_json").to_pylist()] == [
        {"name": "landsat-9"},
        "landsat-7",
    ]
    assert hints == {"platform__v_json": {"x-stac-variant-of": "platform", "data_type": "json"}}
    assert tables.table(rows({"platform": {"name": "x"}}), schema)[1] == {}  # hinted once


def test_a_type_the_schema_has_for_a_column_holds_in_a_later_run() -> None:
    schema = Schema("stac")
    loaded(schema, ItemTables().table(rows({"gsd": 10.0}), schema))

    table, hints = ItemTables().table(rows({"gsd": "ten"}), schema)  # the next run's

    assert table.column("gsd__v_json").to_pylist() == ['"ten"']
    assert hints == {"gsd__v_json": {"x-stac-variant-of": "gsd", "data_type": "json"}}


def test_values_that_cannot_share_a_type_on_one_page_are_json_text() -> None:
    table, hints = ItemTables().table(rows({"gsd": 10}, {"gsd": "ten"}, {"gsd": None}), Schema("stac"))

    assert table.column("gsd").to_pylist() == ["10", '"ten"', None]
    assert hints == {"gsd": {"x-stac-property": "gsd", "data_type": "json"}}


def test_a_column_only_null_so_far_waits_for_its_first_value() -> None:
    tables, schema = ItemTables(), Schema("stac")

    empty, _ = tables.table(rows({"updated_by": None}), schema)
    filled, _ = tables.table(rows({"updated_by": "me"}), schema)

    assert "updated_by" not in empty.column_names
    assert filled.schema.field("updated_by").type == pa.string()
    assert filled.column("updated_by").to_pylist() == ["me"]


def test_properties_whose_names_meet_keep_their_values_in_columns_of_their_own() -> None:
    page = rows(
        {"eo:cloud_cover": 10, "eo_cloud_cover": 20, "Platform": "A", "platform": "b", "id": "p", "bbox_west": 5,
         "content_hash": "h", "_dlt_id": "d", "Datetime": "x", "datetime": "2024-01-01T00:00:00Z"}
    )  # fmt: skip

    table, hints = ItemTables().table(page, Schema("stac"))

    values = {name: table.column(name).to_pylist()[0] for name in table.column_names}
    assert {name: value for name, value in values.items() if value is not None} == {
        "id": "i0",
        "collection": "c",
        "eo_cloud_cover": 10.0,
        "eo_cloud_cover_2": 20.0,
        "platform": "A",
        "platform_2": "b",
        "id_2": "p",
        "bbox_west_2": 5.0,
        "content_hash_2": "h",
        "_dlt_id_2": "d",
        "datetime_2": "x",
    }
    assert hints["eo_cloud_cover_2"] == {"x-stac-property": "eo_cloud_cover"}
    assert hints["platform"] == {"x-stac-property": "Platform"}


def test_a_column_stays_with_the_property_that_took_it_in_an_earlier_run() -> None:
    schema = Schema("stac")
    loaded(schema, ItemTables().table(rows({"eo:cloud_cover": 10}), schema))

    table, hints = ItemTables().table(rows({"eo_cloud_cover": 20}, {"eo:cloud_cover": 30}), schema)

    assert table.column("eo_cloud_cover").to_pylist() == [None, 30.0]
    assert table.column("eo_cloud_cover_2").to_pylist() == [20.0, None]
    assert hints == {
        "eo_cloud_cover_2": {"x-stac-property": "eo_cloud_cover"},
        "eo_cloud_cover": {"x-stac-property": "eo:cloud_cover"},
    }


def test_a_named_searchs_table_keeps_its_choices_whatever_its_name() -> None:
    schema = Schema("stac")
    loaded(
        schema, ItemTables("search_s2-L2A").table(rows({"eo:cloud_cover": 10, "gsd": 10.0}), schema), "search_s2-L2A"
    )

    table, _ = ItemTables("search_s2-L2A").table(rows({"eo_cloud_cover": 20, "gsd": True}), schema)

    assert table.column("eo_cloud_cover_2").to_pylist() == [20.0]
    assert table.column("gsd__v_json").to_pylist() == ["true"], "not cast to 1.0"


def test_an_own_text_column_keeps_a_value_that_is_not_text_as_its_json() -> None:
    page = rows({}, {})
    page[0]["stac_version"], page[1]["stac_version"] = "1.0.0", ["1.0.0", "1.1.0"]

    table, _ = ItemTables().table(page, Schema("stac"))

    assert table.column("stac_version").to_pylist() == ["1.0.0", '["1.0.0","1.1.0"]']
