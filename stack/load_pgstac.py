"""Migrates pgstac and loads collections with their items into it. Runs in the server's virtualenv.

Usage: load_pgstac.py COLLECTION_JSON ITEMS_NDJSON [COLLECTION_JSON ITEMS_NDJSON ...]
The database comes from the PG* environment variables. Kept free of the project's imports because
it runs with `.venv-server/bin/python`, where pypgstac lives.

Every item pgstac accepts is loaded; the ones it refuses (e.g. `start_datetime` after `end_datetime`, which
real catalogs hold) are set aside, and each collection's refusals go to stdout as one JSON line per reason:
`{"collection": ..., "reason": ..., "ids": [...]}`.
"""

import itertools
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods, read_json
from pypgstac.migrate import Migrate

# stac-fastapi-pgstac reports numberMatched only with pgstac's context setting on.
ENABLE_CONTEXT = "UPDATE pgstac.pgstac_settings SET value = 'on' WHERE name = 'context' RETURNING value"
CHUNK_ITEMS = 5000
Refusal = tuple[str, str]
"""An item's id and the reason pgstac gave for refusing it."""


def chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def reason_of(error: Exception) -> str:
    message = (str(error).strip().splitlines() or [""])[0]
    return message if type(error) is Exception else f"{type(error).__name__}: {message}"


def refusals_loading(loader: Loader, items: list[dict[str, Any]], method: Methods) -> list[Refusal]:
    """Loads `items`; when pgstac refuses the lot, halves it until each refused item stands alone.

    The halves load with `insert_ignore`: a part of the refused lot may have been committed already (pgstac
    loads one partition at a time), and it must not count as refused for being there.
    """
    try:
        loader.load_items(iter(items), method)
        return []
    except Exception as error:
        if len(items) == 1:
            return [(str(items[0].get("id")), reason_of(error))]
    half = len(items) // 2
    return [
        *refusals_loading(loader, items[:half], Methods.insert_ignore),
        *refusals_loading(loader, items[half:], Methods.insert_ignore),
    ]


def report_refusals(collection_id: str, refusals: list[Refusal]) -> None:
    by_reason: dict[str, list[str]] = defaultdict(list)
    for item_id, reason in refusals:
        by_reason[reason].append(item_id)
    for reason, ids in by_reason.items():
        print(json.dumps({"collection": collection_id, "reason": reason, "ids": ids}), flush=True)


def main(paths: list[str]) -> None:
    with PgstacDB(dsn="") as db:
        Migrate(db).run_migration()
        db.query_one(ENABLE_CONTEXT)
        loader = Loader(db=db)
        for collection_json, items in zip(paths[::2], paths[1::2], strict=True):
            loader.load_collections(collection_json, Methods.insert)
            refusals = [
                refusal
                for chunk in chunks(read_json(items), CHUNK_ITEMS)
                for refusal in refusals_loading(loader, chunk, Methods.insert)
            ]
            with open(collection_json, encoding="utf-8") as collection:
                report_refusals(json.load(collection)["id"], refusals)


if __name__ == "__main__":
    main(sys.argv[1:])
