"""Spatial SQL on the loaded footprints, as docs/tables.md shows it: DuckDB's spatial extension (installed from its PyPI
wheel by the main job, then loaded by DuckDB on its own), and PostGIS geometry with a GIST index in Postgres."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pytest

from stack import PgstacServer, RustacServer
from tests.test_main_pipeline import PROJECT_ROOT, run_main_job

POINT = (-85.91, 30.97)
"""A point inside seven of the sample's naip footprints."""
DUCKDB_QUERY = """LOAD spatial;
SELECT id FROM terrabyte_stac.items
WHERE ST_Intersects(ST_GeomFromGeoJSON(geometry), ST_Point(-85.91, 30.97))
ORDER BY id"""
POSTGIS_QUERY = """SELECT id FROM terrabyte_stac.items
WHERE ST_Intersects(geometry, ST_SetSRID(ST_Point(-85.91, 30.97), 4326))
ORDER BY id"""

GEOMETRY_TYPE_IN_DATASET = (
    "SELECT data_type FROM information_schema.columns"
    " WHERE table_schema = 'terrabyte_stac' AND table_name = 'items' AND column_name = 'geometry'"
)


def naip_items() -> list[dict[str, Any]]:
    with gzip.open(PROJECT_ROOT / "tests" / "data" / "stac" / "naip" / "items.ndjson.gz", "rt") as lines:
        return [json.loads(line) for line in lines]


def within_ring(ring: list[list[float]], x: float, y: float) -> bool:
    """Whether (x, y) lies inside a closed ring (ray casting)."""
    inside = False
    for start, end in zip(ring, ring[1:], strict=False):
        (x1, y1), (x2, y2) = start[:2], end[:2]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def ids_containing(x: float, y: float) -> list[tuple[str]]:
    """The naip items whose footprint (a polygon without holes, each) holds the point, worked out from their JSON."""
    return sorted((item["id"],) for item in naip_items() if within_ring(item["geometry"]["coordinates"][0], x, y))


def test_the_docs_show_the_spatial_queries_tested_here() -> None:
    tables = (PROJECT_ROOT / "docs" / "tables.md").read_text()
    assert DUCKDB_QUERY in tables and POSTGIS_QUERY in tables
    assert len(ids_containing(*POINT)) == 7


def test_footprints_answer_spatial_sql_in_plain_duckdb_and_through_dlt(
    rustac_server: RustacServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip")
    assert loaded.returncode == 0, loaded.stderr

    with duckdb.connect(str(tmp_path / "terrabyte.duckdb"), read_only=True) as connection:
        assert connection.execute(DUCKDB_QUERY).fetchall() == ids_containing(*POINT)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__EXTENSIONS", '["spatial"]')  # as `make dashboard` sets it
    dataset = dlt.attach("terrabyte", pipelines_dir=str(tmp_path / "dlt" / "pipelines")).dataset()
    query = DUCKDB_QUERY.removeprefix("LOAD spatial;\n").replace("terrabyte_stac.", "")
    assert dataset(query).fetchall() == ids_containing(*POINT)


def test_footprints_are_postgis_geometry_with_a_gist_index(
    rustac_server: RustacServer, postgres_database: str, tmp_path: Path
) -> None:
    into_postgres = {"DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
    arguments = ("--url", rustac_server.url, "--collections", "naip", "--destination", "postgres")

    first = run_main_job(tmp_path, *arguments, env=into_postgres)
    again = run_main_job(tmp_path, *arguments, env=into_postgres)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'terrabyte_stac.items'::regclass AND attname = 'geometry'"
        )
        assert cursor.fetchall() == [("geometry(Geometry,4326)",)]
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'items' ORDER BY indexname")
        assert cursor.fetchall() == [
            ("CREATE INDEX items__geometry_gist ON terrabyte_stac.items USING gist (geometry)",),
            ("CREATE INDEX items__id_collection ON terrabyte_stac.items USING btree (id, collection)",),
        ]
        cursor.execute(POSTGIS_QUERY)
        assert cursor.fetchall() == ids_containing(*POINT)


def test_a_database_where_postgis_may_not_be_enabled_gets_advice_or_loads_json(
    rustac_server: RustacServer, pgstac_server: PgstacServer, tmp_path: Path
) -> None:
    """The owner of a database who is no superuser may not create PostGIS (an untrusted extension)."""
    cluster = pgstac_server.cluster
    connection = psycopg2.connect(cluster.url("postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE geo_owner LOGIN PASSWORD 'owner-secret-7f3a'")
        cursor.execute("CREATE DATABASE geo_owned OWNER geo_owner")
    connection.close()
    owned = f"postgresql://geo_owner:owner-secret-7f3a@127.0.0.1:{cluster.port}/geo_owned"
    arguments = ("--url", rustac_server.url, "--collections", "joplin", "--destination", "postgres")

    refused = run_main_job(tmp_path, *arguments, env={"DESTINATION__POSTGRES__CREDENTIALS": owned})
    as_json = run_main_job(
        tmp_path, *arguments, env={"DESTINATION__POSTGRES__CREDENTIALS": owned, "MAIN_JOB__POSTGIS": "false"}
    )

    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == (
        "error: PostGIS could not be enabled in database 'geo_owned': permission denied to create extension "
        '"postgis". Ask its owner to run `CREATE EXTENSION postgis;` in it (PostGIS must be installed on the '
        "server), or keep `geometry` as JSON with `[main_job] postgis = false` (MAIN_JOB__POSTGIS=false)."
    )
    assert "owner-secret-7f3a" not in refused.stdout + refused.stderr
    assert as_json.returncode == 0, as_json.stderr
    with psycopg2.connect(owned) as connection, connection.cursor() as cursor:
        cursor.execute(GEOMETRY_TYPE_IN_DATASET)
        assert cursor.fetchall() == [("jsonb",)]
        cursor.execute("SELECT COUNT(*) FROM terrabyte_stac.items")
        assert cursor.fetchall() == [(30,)]
