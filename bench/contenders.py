"""The contenders, each run by the harness in a process of its own so that its peak RSS is its own.

    python -m bench.contenders NAME --url URL --workdir DIR --result FILE [options]

Each one reads every item of the API (or, for the incremental run, the new ones), counts what it got
and writes a JSON report with at least `items` to FILE. Only the public API of our source is used:
`from sources.stac import stac` and dlt.

Each contender imports its libraries itself, so that no process pays the time and memory of
another's imports (pystac-client never loads dlt, ours never loads rustac).
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


def our_items(url: str, destination: str, page_size: int | None, workdir: Path) -> dict[str, Any]:
    """Our source, full load on the first run in `workdir`, incremental on the next; counted in the destination."""
    from sources.stac import stac

    pipeline = dlt_pipeline("bench_stac", workdir, destination)
    pipeline.run(stac(url=url) if page_size is None else stac(url=url, page_size=page_size))
    loaded = pipeline.last_trace.last_normalize_info.row_counts.get("items", 0)
    with pipeline.sql_client() as client:
        items = client.make_qualified_table_name("items")
        keys = f"SELECT DISTINCT collection, id FROM {items}"
        [(count, distinct)] = client.execute_sql(
            f"SELECT count(*), (SELECT count(*) FROM ({keys}) AS item_keys) FROM {items}"
        )
    return {
        "items": count,
        "distinct": distinct,
        "loaded": loaded,
        "page_size": page_size or source_setting("page_size"),
        "concurrency": source_setting("concurrency"),
    }


def source_setting(name: str) -> int:
    """A setting our source runs with when the call does not give it: `[sources.stac] <name>`, else its default."""
    import inspect

    import dlt

    from sources.stac import stac

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
    return our_items(args.url, args.destination, args.page_size, args.workdir)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.contenders", description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=("pystac-client", "rest-api", "rustac", "ours"))
    parser.add_argument("--url", required=True, help="the STAC API's landing page")
    parser.add_argument("--workdir", type=Path, required=True, help="where files and dlt state go")
    parser.add_argument("--result", type=Path, required=True, help="the JSON report to write")
    parser.add_argument(
        "--peer-limit", type=int, default=1000, help="page size asked by pystac-client, rest_api, rustac"
    )
    parser.add_argument("--max-items", type=int, help="rest_api only: stop after about this many items")
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb", help="ours only")
    parser.add_argument("--page-size", type=int, help="ours only: page_size (default: the source's)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.url = args.url.rstrip("/")
    args.result.write_text(json.dumps(report_of(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
