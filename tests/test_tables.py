"""Item rows as Arrow tables without a server: a column keeps its first type, numbers are doubles, and values that
cannot share that type go to a `__v_json` variant column."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from dlt_stac.tables import ItemTables


def rows(*properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": f"i{index}", "collection": "c", **values} for index, values in enumerate(properties)]


def test_integers_and_doubles_share_one_double_column_across_pages() -> None:
    tables = ItemTables()

    first, _ = tables.table(rows({"cloud": 0}, {"cloud": 3}))
    second, _ = tables.table(rows({"cloud": 12.5}))

    assert first.schema.field("cloud").type == second.schema.field("cloud").type == pa.float64()
    assert first.column("cloud").to_pylist() == [0.0, 3.0]
    assert second.column("cloud").to_pylist() == [12.5]


def test_a_later_page_of_another_type_goes_to_a_variant_column_hinted_json() -> None:
    tables = ItemTables()
    tables.table(rows({"platform": "landsat-8"}))

    table, hints = tables.table(rows({"platform": {"name": "landsat-9"}}, {"platform": "landsat-7"}))

    assert "platform" not in table.column_names
    assert [json.loads(value) for value in table.column("platform__v_json").to_pylist()] == [
        {"name": "landsat-9"},
        "landsat-7",
    ]
    assert hints == {"platform__v_json": {"data_type": "json"}}
    assert tables.table(rows({"platform": {"name": "x"}}))[1] == {}  # hinted once


def test_values_that_cannot_share_a_type_on_one_page_are_json_text() -> None:
    table, hints = ItemTables().table(rows({"gsd": 10}, {"gsd": "ten"}, {"gsd": None}))

    assert table.column("gsd").to_pylist() == ["10", '"ten"', None]
    assert hints == {"gsd": {"data_type": "json"}}


def test_a_column_only_null_so_far_waits_for_its_first_value() -> None:
    tables = ItemTables()

    empty, _ = tables.table(rows({"updated_by": None}))
    filled, _ = tables.table(rows({"updated_by": "me"}))

    assert "updated_by" not in empty.column_names
    assert filled.schema.field("updated_by").type == pa.string()
    assert filled.column("updated_by").to_pylist() == ["me"]
