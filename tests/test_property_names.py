"""No catalog's property names can stop a run or lose a value: names that meet after normalization, names of the
table's own columns, names over Postgres' 63-byte limit, and values whose type changes, into DuckDB and Postgres."""

from __future__ import annotations

import copy
import logging
import uuid
from typing import Any

import dlt
import pytest

from dlt_stac import stac
from stack import CatalogFolder, PgstacServer
from tests.stac_helpers import add_items, create_collection, query

LONG = "landsat:" + "collection_category_of_the_scene_as_written_by_the_processing_system_"
"""Two property names of 77 and 78 bytes that share their first 76."""


def item(template: dict[str, Any], item_id: str, day: int, properties: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(template)
    document["id"] = item_id
    document["properties"] = {"datetime": f"2024-01-{day:02d}T00:00:00Z", **properties}
    return document


def column_holding(pipeline: dlt.Pipeline, name: str) -> str:
    """The column of `items` that the schema says holds property `name`."""
    [column] = [
        column_name
        for column_name, column in pipeline.default_schema.tables["items"]["columns"].items()
        if column.get("x-stac-property") == name  # type: ignore[comparison-overlap]
    ]
    return column


@pytest.mark.parametrize("pipeline_fixture", ["duckdb_pipeline", "postgres_pipeline"])
def test_every_property_keeps_its_value_whatever_its_name(
    pgstac_server: PgstacServer,
    sample_catalog: CatalogFolder,
    pipeline_fixture: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline: dlt.Pipeline = request.getfixturevalue(pipeline_fixture)
    monkeypatch.setattr(logging.getLogger("dlt"), "handlers", [caplog.handler])  # dlt's logger does not propagate
    joplin = next(sample_catalog.files_of("joplin").items())
    collection = f"names-{uuid.uuid4().hex[:8]}"
    create_collection(pgstac_server.url, sample_catalog.files_of("joplin").collection(), collection)
    meeting = {"eo:cloud_cover": 10, "eo_cloud_cover": 20, "Platform": "A", "platform": "b"}
    own = {"id": "p-id", "collection": "p-collection", "geometry": "p-geometry", "bbox_west": 5, "content_hash": "p"}
    add_items(pgstac_server.url, collection, [
        item(joplin, "a", 1, {**meeting, **own, LONG + "a": 1.5, LONG + "ab": 2.5, "resolution": 10}),
        item(joplin, "b", 2, {"eo_cloud_cover": 21}),
    ])  # fmt: skip

    pipeline.run(stac(url=pgstac_server.url, collections=[collection]))

    assert query(
        pipeline,
        "SELECT id, collection, eo_cloud_cover, eo_cloud_cover_2, platform, platform_2, id_2, collection_2,"
        " geometry_2, bbox_west = {west}, bbox_west_2, content_hash_2, LENGTH(content_hash), resolution"
        " FROM {items} ORDER BY id".replace("{west}", str(joplin["bbox"][0])),
    ) == [
        ("a", collection, 10.0, 20.0, "A", "b", "p-id", "p-collection", "p-geometry", True, 5.0, "p", 32, 10.0),
        ("b", collection, None, 21.0, None, None, None, None, None, True, None, None, 32, None),
    ]
    long_columns = [column_holding(pipeline, LONG + "a"), column_holding(pipeline, LONG + "ab")]
    assert len(set(long_columns)) == 2
    if pipeline_fixture == "postgres_pipeline":
        assert all(len(column.encode()) <= 63 for column in long_columns), "shortened to Postgres' limit"
    assert query(pipeline, f"SELECT {', '.join(long_columns)} FROM {{items}} WHERE id = 'a'") == [(1.5, 2.5)]
    renamed = sorted(record.getMessage() for record in caplog.records if "into column" in record.getMessage())
    assert renamed == [
        f"items: Property `{name}` loads into column `{column}`, since `{plain}` holds {holder}."
        for name, column, plain, holder in sorted([
            ("eo_cloud_cover", "eo_cloud_cover_2", "eo_cloud_cover", "property `eo:cloud_cover`"),
            ("platform", "platform_2", "platform", "property `Platform`"),
            ("id", "id_2", "id", "the table's own `id`"),
            ("collection", "collection_2", "collection", "the table's own `collection`"),
            ("geometry", "geometry_2", "geometry", "the table's own `geometry`"),
            ("bbox_west", "bbox_west_2", "bbox_west", "the table's own `bbox_west`"),
            ("content_hash", "content_hash_2", "content_hash", "the table's own `content_hash`"),
        ])
    ]  # fmt: skip

    caplog.clear()
    add_items(pgstac_server.url, collection, [
        item(joplin, "c", 3, {"eo_cloud_cover": 22, "resolution": "high"}),  # the next run: eo_cloud_cover only
        item(joplin, "d", 4, {"eo:cloud_cover": 12}),
    ])  # fmt: skip
    pipeline.run(stac(url=pgstac_server.url, collections=[collection]))

    assert query(
        pipeline,
        "SELECT id, eo_cloud_cover, eo_cloud_cover_2, resolution, CAST(resolution__v_json AS TEXT) FROM {items}"
        " WHERE id IN ('c', 'd') ORDER BY id",
    ) == [("c", None, 22.0, None, '"high"'), ("d", 12.0, None, None, None)]
    assert [record.getMessage() for record in caplog.records if "into column" in record.getMessage()] == [
        "items: Property `eo_cloud_cover` loads into column `eo_cloud_cover_2`, since `eo_cloud_cover` holds property"
        " `eo:cloud_cover`.",
    ], "said once a run"
