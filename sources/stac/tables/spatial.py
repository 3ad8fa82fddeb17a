"""The items' footprints as geometry that spatial SQL can use.

Every item table has a `geometry` column holding the item's GeoJSON geometry. In Postgres with PostGIS,
`with_postgis_geometry` makes it a PostGIS `geometry(Geometry, 4326)` column (dlt's `postgres_adapter`; GeoJSON
coordinates are WGS 84), and `create_geometry_indexes` gives each item table a GIST index on it. In DuckDB the
column stays JSON, which the `spatial` extension reads with `ST_GeomFromGeoJSON`; `install_duckdb_spatial` installs
that extension from its PyPI wheel, since DuckDB's own extension host may be out of reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.destinations.adapters import postgres_adapter
from dlt.destinations.sql_client import SqlClientBase
from dlt.extract import DltSource

from ..errors import StacSourceError

GEOMETRY = "geometry"
WGS84 = 4326
SPATIAL = "spatial"


class PostgisUnavailable(StacSourceError):
    def __init__(self, database: str, reason: str) -> None:
        super().__init__(
            f"PostGIS could not be enabled in database {database!r}: {reason}. Ask its owner to run "
            "`CREATE EXTENSION postgis;` in it (PostGIS must be installed on the server), or keep `geometry` as "
            "JSON with `[main_job] postgis = false` (MAIN_JOB__POSTGIS=false)."
        )


class DuckdbSpatialUnavailable(StacSourceError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"DuckDB's spatial extension could not be installed: {reason}")


def with_postgis_geometry(source: DltSource) -> DltSource:
    """The source, whose item tables (every resource with a `geometry` column) get `geometry` as a PostGIS geometry
    in Postgres; other destinations ignore the hint."""
    for resource in source.resources.values():
        if GEOMETRY in (resource.columns or {}):
            postgres_adapter(resource, geometry=GEOMETRY, srid=WGS84)
    return source


def enable_postgis(pipeline: dlt.Pipeline) -> None:
    """Enables PostGIS in the pipeline's Postgres database where it is not yet; raises `PostgisUnavailable`."""
    with pipeline.sql_client() as client:
        if client.execute_sql("SELECT 1 FROM pg_extension WHERE extname = 'postgis'"):
            return
        try:
            client.execute_sql("CREATE EXTENSION IF NOT EXISTS postgis")
        except Exception as error:  # dlt wraps psycopg2's errors in its own types
            reason = str(getattr(error, "dbapi_exception", None) or error).strip().splitlines()[0]
            raise PostgisUnavailable(client.credentials.database, reason) from None


def create_geometry_indexes(pipeline: dlt.Pipeline) -> list[str]:
    """Creates, where missing, a GIST index on the `geometry` of each item table in the pipeline's Postgres
    dataset where that is a PostGIS geometry (a table loaded before PostGIS keeps JSON until a `--full-refresh`);
    returns the names of those it created. (`dlt_stac.runs` indexes `(collection, id)`, by which dlt's merge finds the
    rows it replaces.)"""
    created = []
    with pipeline.sql_client() as client:
        for table in _item_tables(pipeline):
            name = f"{table}__{GEOMETRY}_gist"[:63]
            if _column_type(client, table, GEOMETRY) != "geometry" or _index_exists(client, table, name):
                continue
            qualified = client.make_qualified_table_name(table)
            client.execute_sql(f"CREATE INDEX {client.escape_column_name(name)} ON {qualified} USING GIST ({GEOMETRY})")
            created.append(name)
    return created


def _item_tables(pipeline: dlt.Pipeline) -> list[str]:
    return [
        table["name"]
        for table in pipeline.default_schema.data_tables()
        if {GEOMETRY, "collection", "id"} <= set(table.get("columns", {}))
    ]


def _index_exists(client: SqlClientBase[Any], table: str, name: str) -> bool:
    return bool(
        client.execute_sql(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname = %s",
            client.dataset_name,
            table,
            name,
        )
    )


def _column_type(client: SqlClientBase[Any], table: str, column: str) -> str | None:
    rows = client.execute_sql(
        "SELECT udt_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        " AND column_name = %s",
        client.dataset_name,
        table,
        column,
    )
    return rows[0][0] if rows else None


def install_duckdb_spatial() -> None:
    """Makes `LOAD spatial` work in every DuckDB of this Python environment (dlt's loads, `pipeline.dataset()`,
    the dashboard, notebooks): installs the extension from the `duckdb-extension-spatial` wheel into DuckDB's
    extension directory, once. Raises `DuckdbSpatialUnavailable`."""
    with duckdb.connect() as connection:
        installed = connection.execute(
            "SELECT installed FROM duckdb_extensions() WHERE extension_name = ?", [SPATIAL]
        ).fetchone()
        if installed and installed[0]:
            return
        try:
            connection.execute(f"INSTALL '{_wheel_extension()}'")
        except (duckdb.Error, OSError) as error:
            raise DuckdbSpatialUnavailable(str(error)) from None


def _wheel_extension() -> Path:
    """The extension file of the `duckdb-extension-spatial` wheel, built for exactly this DuckDB."""
    try:
        import duckdb_extension_spatial
    except ImportError:
        raise DuckdbSpatialUnavailable("the duckdb-extension-spatial package is not installed") from None
    folder = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    path = folder / f"v{duckdb.__version__}" / f"{SPATIAL}.duckdb_extension"
    if not path.exists():
        built_for = ", ".join(sorted(child.name for child in folder.iterdir())) if folder.exists() else "none"
        raise DuckdbSpatialUnavailable(
            f"duckdb-extension-spatial holds the extension for DuckDB {built_for}, and this is DuckDB "
            f"v{duckdb.__version__}: install the versions pyproject.toml pins"
        )
    return path
