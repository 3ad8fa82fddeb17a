"""Migrates pgstac and loads collections with their items into it. Runs in the server's virtualenv.

Usage: load_pgstac.py COLLECTION_JSON ITEMS_NDJSON [COLLECTION_JSON ITEMS_NDJSON ...]
The database comes from the PG* environment variables. Kept free of the project's imports because
it runs with `.venv-server/bin/python`, where pypgstac lives.
"""

import sys

from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate

# stac-fastapi-pgstac reports numberMatched only with pgstac's context setting on.
ENABLE_CONTEXT = "UPDATE pgstac.pgstac_settings SET value = 'on' WHERE name = 'context' RETURNING value"


def main(paths: list[str]) -> None:
    with PgstacDB(dsn="") as db:
        Migrate(db).run_migration()
        db.query_one(ENABLE_CONTEXT)
        loader = Loader(db=db)
        for collection_json, items in zip(paths[::2], paths[1::2], strict=True):
            loader.load_collections(collection_json, Methods.insert)
            loader.load_items(items, Methods.insert)


if __name__ == "__main__":
    main(sys.argv[1:])
