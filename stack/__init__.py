"""The local STAC API stack that the tests, the benchmark and the demo run against.

Servers bound to 127.0.0.1, each loaded from a folder of collections laid out as
`<collection>/collection.json` + `<collection>/items.ndjson[.gz]` (see `tests/data/stac/README.md`):

- `PgstacServer`: stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster (`PostgresCluster`).
- `RustacServer`: rustac's in-memory `rustac serve`, light and quick to start.
- `GeoparquetServer`: stac-fastapi-geoparquet on stac-geoparquet files, for the tests of servers that differ.

`python -m stack --help` drives them from the shell (`make stack-up` / `make stack-down`).
"""

from stack.catalog_folder import CatalogFolder, CollectionFiles
from stack.geoparquet import GeoparquetServer
from stack.pgstac import PgstacServer
from stack.postgres import PostgresCluster
from stack.rustac import RustacServer

__all__ = ["CatalogFolder", "CollectionFiles", "GeoparquetServer", "PgstacServer", "PostgresCluster", "RustacServer"]
