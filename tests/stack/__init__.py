"""The local STAC API stack that the tests, the benchmark and the demo run against.

Two servers, both bound to 127.0.0.1 and both loaded from a folder of collections laid out as
`<collection>/collection.json` + `<collection>/items.ndjson[.gz]` (see `tests/data/stac/README.md`):

- `PgstacServer`: stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster (`PostgresCluster`).
- `RustacServer`: rustac's in-memory `rustac serve`, light and quick to start.

`python -m tests.stack --help` drives them from the shell (`make stack-up` / `make stack-down`).
"""

from tests.stack.catalog_folder import CatalogFolder, CollectionFiles
from tests.stack.pgstac import PgstacServer
from tests.stack.postgres import PostgresCluster
from tests.stack.rustac import RustacServer

__all__ = ["CatalogFolder", "CollectionFiles", "PgstacServer", "PostgresCluster", "RustacServer"]
