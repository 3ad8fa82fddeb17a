"""The peers, each run by the harness in a process of its own so that its peak RSS is its own, and the count
of what ours loaded.

    python -m bench.contenders PEER --url URL --workdir DIR --result FILE [options]
    python -m bench.contenders count --destination duckdb|postgres --workdir DIR --result FILE

Each peer reads every item of the API, counts what it got and writes a JSON report with at least `items`
to FILE. Ours is the main job itself (`pipelines/terrabyte_pipeline.py`, run by `bench/measure.py`);
`count` then reads, in a process that is not measured, what its destination holds.

Each contender imports its libraries itself, so that no process pays the time and memory of
another's imports (pystac-client never loads dlt, the main job never loads rustac).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

NEXT_LINK = "links[?rel=='next'].href"
MAIN_JOB_PIPELINE = "terrabyte"
"""The pipeline name of pipelines/terrabyte_pipeline.py, which the benchmark runs as ours."""
POSTGRES_URL_VARIABLE = "BENCH_POSTGRES_URL"
"""The destination database's URL (with its password) comes in the environment, not on the command line."""


def pystac_client_items(url: str, limit: int) -> dict[str, Any]:
    """pystac-client as its docs show it: `Client.open(url).search(...)`, which POSTs /search and follows `next`."""
    from pystac_client import Client

    search = Client.open(url).search(limit=limit)
    return {"items": sum(1 for _ in search.items_as_dicts()), "method": search.method}


def rest_api_items(url: str, limit: int, max_items: int | None, workdir: Path) -> dict[str, Any]:
    """dlt's generic rest_api source: one resource per collection on `/collections/{id}/items`, paged by the
    `rel=next` link, all into one `items` table, with rest_api's defaults otherwise (nesting included).

    `max_items` caps it evenly over the collections (whole pages, so it may load a little more).
    """
    from dlt.sources.rest_api import rest_api_source

    collections = collection_ids(url)
    per_collection = math.ceil(max_items / len(collections)) if max_items else None
    source = rest_api_source(
        {
            "client": {"base_url": f"{url}/", "paginator": {"type": "json_link", "next_url_path": NEXT_LINK}},
            "resources": [
                {
                    "name": f"items_{collection}",
                    "table_name": "items",
                    "endpoint": {
                        "path": f"collections/{collection}/items",
                        "params": {"limit": limit},
                        "data_selector": "features",
                    },
                }
                for collection in collections
            ],
        }
    )
    if per_collection:
        for resource in source.resources.values():
            resource.add_limit(per_collection, count_rows=True)
    pipeline = dlt_pipeline("bench_rest_api", workdir)
    pipeline.run(source)
    with pipeline.sql_client() as client:
        [(count,)] = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name('items')}")
    return {"items": count, "tables": len(pipeline.default_schema.data_table_names())}


def collection_ids(url: str) -> list[str]:
    """The ids of every collection the API shows, following the `next` links of /collections."""
    ids: list[str] = []
    page_url: str | None = f"{url}/collections"
    while page_url:
        with urllib.request.urlopen(page_url, timeout=60) as response:
            page = json.load(response)
        ids += [collection["id"] for collection in page["collections"]]
        page_url = next((link["href"] for link in page.get("links", []) if link.get("rel") == "next"), None)
    return ids


def rustac_items(url: str, limit: int, workdir: Path) -> dict[str, Any]:
    """rustac's `search_to`, one stac-geoparquet file per collection, whose rows are then counted.

    One file per collection: rustac 0.9.18 cannot write items whose properties differ as much as these
    collections' do into one file ("all columns in a record batch must have the same length").
    """
    import asyncio

    import pyarrow.parquet
    import rustac

    async def search_to(collection: str) -> int:  # search_to needs a running event loop when it is called
        return int(
            await rustac.search_to(str(workdir / f"{collection}.parquet"), url, collections=[collection], limit=limit)
        )

    async def search_all(collections: list[str]) -> int:
        written = 0
        for collection in collections:
            written += await search_to(collection)
        return written

    collections = collection_ids(url)
    written = asyncio.run(search_all(collections))
    rows = sum(pyarrow.parquet.read_metadata(workdir / f"{collection}.parquet").num_rows for collection in collections)
    return {"items": rows, "reported": written}


def destination_counts(destination: str, workdir: Path) -> dict[str, Any]:
    """What the main job's pipeline in `workdir` holds: rows of `items`, distinct `(collection, id)`, the DuckDB
    file's size, and the source settings it ran with."""
    import dlt

    target: Any = (
        dlt.destinations.postgres(os.environ[POSTGRES_URL_VARIABLE])
        if destination == "postgres"
        else dlt.destinations.duckdb(str(workdir / f"{MAIN_JOB_PIPELINE}.duckdb"))
    )
    pipeline = dlt.attach(MAIN_JOB_PIPELINE, pipelines_dir=str(workdir / "dlt" / "pipelines"), destination=target)
    with pipeline.sql_client() as client:
        items = client.make_qualified_table_name("items")
        keys = f"SELECT DISTINCT collection, id FROM {items}"
        [(count, distinct)] = client.execute_sql(
            f"SELECT count(*), (SELECT count(*) FROM ({keys}) AS item_keys) FROM {items}"
        )
    duckdb_file = workdir / f"{MAIN_JOB_PIPELINE}.duckdb"
    return {
        "items": count,
        "distinct": distinct,
        "duckdb_mb": duckdb_file.stat().st_size / 1e6 if destination == "duckdb" else None,
        **{name: source_setting(name) for name in ("page_size", "concurrency", "package_size")},
    }


def source_setting(name: str) -> int:
    """A setting our source runs with when the call does not give it: `[sources.stac] <name>`, else its default."""
    import inspect

    import dlt

    from dlt_stac import stac

    configured = dlt.config.get(f"sources.stac.{name}")
    return int(configured or inspect.signature(stac).parameters[name].default)


def dlt_pipeline(name: str, workdir: Path, destination: str = "duckdb") -> Any:
    """A pipeline with its state in `workdir`, into `workdir/<name>.duckdb` or the database of BENCH_POSTGRES_URL."""
    import dlt

    if destination == "postgres":
        target = dlt.destinations.postgres(os.environ[POSTGRES_URL_VARIABLE])
    else:
        target = dlt.destinations.duckdb(str(workdir / f"{name}.duckdb"))
    return dlt.pipeline(
        pipeline_name=name, pipelines_dir=str(workdir / "pipelines"), destination=target, dataset_name="stac"
    )


def report_of(args: argparse.Namespace) -> dict[str, Any]:
    if args.contender == "pystac-client":
        return pystac_client_items(args.url, args.peer_limit)
    if args.contender == "rest-api":
        return rest_api_items(args.url, args.peer_limit, args.max_items, args.workdir)
    if args.contender == "rustac":
        return rustac_items(args.url, args.peer_limit, args.workdir)
    return destination_counts(args.destination, args.workdir)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.contenders", description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=("pystac-client", "rest-api", "rustac", "count"))
    parser.add_argument("--url", help="the STAC API's landing page (not for count)")
    parser.add_argument("--workdir", type=Path, required=True, help="where files and dlt state go")
    parser.add_argument("--result", type=Path, required=True, help="the JSON report to write")
    parser.add_argument(
        "--peer-limit", type=int, default=1000, help="page size asked by pystac-client, rest_api, rustac"
    )
    parser.add_argument("--max-items", type=int, help="rest_api only: stop after about this many items")
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb", help="count only")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.url = args.url and args.url.rstrip("/")
    args.result.write_text(json.dumps(report_of(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
