"""`python pipelines/terrabyte_pipeline.py collections`: the collections an API shows, with their item counts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import dlt

from dlt_stac.auth import StacApiCredentials
from dlt_stac.errors import StacSourceError
from dlt_stac.server.api import StacApi, open_api
from dlt_stac.server.paging import read_concurrently

TITLE_WIDTH = 60
REQUEST_SETTINGS = ("search_method", "max_retries", "backoff_factor", "timeout")
"""The `[sources.stac]` settings of how the source asks the API, which this command asks it by too."""


def parse_collections_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="terrabyte_pipeline.py collections",
        description="List the collections the STAC API shows you: id, items (where the API counts them), title.",
    )
    parser.add_argument("--url", help="the STAC API's landing page (default: [sources.stac] url)")
    parser.add_argument("--prefix", help="only collections whose id starts with this")
    return parser.parse_args(argv)


def counted(api: StacApi, collection_id: str) -> Iterator[int | None]:
    yield api.item_count(collection_id)


def collection_lines(api: StacApi, prefix: str | None, concurrency: int) -> list[str]:
    """A line per collection: id, items (`?` where the API does not count them), title; counted `concurrency` at
    a time, a `limit=1` search each."""
    collections = [entry for entry in api.collections if str(entry.get("id", "")).startswith(prefix or "")]
    streams = [counted(api, str(entry["id"])) for entry in collections]
    counts = dict(read_concurrently(streams, concurrency))
    width = max([len(str(entry["id"])) for entry in collections] + [len("collection")])
    lines = [f"{'collection':<{width}} {'items':>10}  title"]
    for index, entry in enumerate(collections):
        count = counts.get(index)
        title = str(entry.get("title") or "")[:TITLE_WIDTH]
        lines.append(f"{entry['id']:<{width}} {'?' if count is None else count:>10}  {title}")
    return lines


def list_collections(argv: list[str], credentials: StacApiCredentials) -> int:
    args = parse_collections_args(argv)
    url = args.url or dlt.config.get("sources.stac.url")
    if not url:
        print("error: no STAC API: pass --url or set [sources.stac] url in .dlt/config.toml", file=sys.stderr)
        return 1
    concurrency = int(dlt.config.get("sources.stac.concurrency") or 2)
    settings = {key: dlt.config.get(f"sources.stac.{key}") for key in REQUEST_SETTINGS}
    try:
        api = open_api(
            url, credentials, concurrency=concurrency, **{k: v for k, v in settings.items() if v is not None}
        )
        lines = collection_lines(api, args.prefix, concurrency)
    except StacSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    print(f"\n{len(lines) - 1} collection{'s' * (len(lines) != 2)} at {url}")
    return 0
