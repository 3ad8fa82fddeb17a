"""The local STAC API stack that the tests, the benchmark and the demo run against.

Two servers, both bound to 127.0.0.1 and both loaded from a folder of collections laid out as
`<collection>/collection.json` + `<collection>/items.ndjson[.gz]` (see `tests/data/stac/README.md`):

- `PgstacServer`: stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster (`PostgresCluster`).
- `RustacServer`: rustac's in-memory `rustac serve`, light and quick to start.

`python -m stack --help` drives them from the shell (`make stack-up` / `make stack-down`).
"""

from stack.catalog_folder import CatalogFolder, CollectionFiles
from stack.pgstac import PgstacServer
from stack.postgres import PostgresCluster
from stack.rustac import RustacServer

__all__ = ["CatalogFolder", "CollectionFiles", "PgstacServer", "PostgresCluster", "RustacServer"]
