"""`make bench-publish`: items/s published into a private STAC API, ours against terrapi-client itself.

    python -m bench.publish [--items 2000] [--batch 500] [--workers 4]

The API is the tests' private one: stac-fastapi-pgstac with Transactions (`stack`, a throwaway cluster), behind
stac-auth-proxy checking JWTs from the tests' OpenID Connect provider (in this process). Every contender signs in
with the same cached refresh token (terrapi's token cache) and publishes the same `--items` items (copies of the
sample's joplin items) into an empty collection of its own, each in a process of its own timed from outside:

- ours: `pipelines/publish_pipeline.py <folder>` as a user runs it (bulk items endpoint, `[publish] batch_size`);
- terrapi-client, one item per call: `create_private_item(client, item)` for each item;
- terrapi-client, FeatureCollection form: `create_private_item(client, items)` with `--batch` items a call.

Then each collection is counted through the API: every contender must have published every item. Needs the
wheels of ../shared/terrapi (`make bench-publish` installs them). The table goes to stdout and
bench/results/publish.md; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson

from bench.measure import PROJECT_ROOT, ProcessUsage, run_measured
from bench.stack import log
from dlt_stac.auth import StacApiCredentials, authorizer_for
from dlt_stac.auth.token_cache import TokenCache
from dlt_stac.publish import StacTransactions
from dlt_stac.publish.files import CollectionFiles
from stack import CatalogFolder, PgstacServer
from stack.auth_proxy import AuthProxy
from stack.oidc_provider import PUBLIC_CLIENT, OidcTestProvider
from stack.processes import make_workdir

RESULTS = Path(__file__).resolve().parent / "results" / "publish.md"
PUBLISH = PROJECT_ROOT / "pipelines" / "publish_pipeline.py"
TARGET = 5.0
"""Ours at least this many times terrapi-client's items/s (one item per call)."""

TERRAPI_ONE_BY_ONE = """
    import json, sys, pystac
    from terrapi.client.stac import create_private_item, open_private_catalog
    client = open_private_catalog()
    for line in open(sys.argv[1]):
        create_private_item(client, pystac.Item.from_dict(json.loads(line)), sys.argv[2])
"""
TERRAPI_FEATURE_COLLECTIONS = """
    import json, sys, pystac
    from terrapi.client.stac import create_private_item, open_private_catalog
    client = open_private_catalog()
    items = [pystac.Item.from_dict(json.loads(line)) for line in open(sys.argv[1])]
    for start in range(0, len(items), int(sys.argv[3])):
        create_private_item(client, items[start : start + int(sys.argv[3])], sys.argv[2])
"""


def bench_items(joplin: CollectionFiles, count: int, collection_id: str) -> list[dict[str, Any]]:
    """`count` copies of the joplin items, with ids of their own, in `collection_id`."""
    originals = list(joplin.items())
    return [
        {**originals[n % len(originals)], "id": f"bench-{n:07d}", "collection": collection_id} for n in range(count)
    ]


def write_source(folder: Path, collection: dict[str, Any], items: list[dict[str, Any]]) -> Path:
    """The items as ndjson (for terrapi-client's scripts) in a collection folder (for ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collection.json").write_bytes(orjson.dumps(collection))
    (folder / "items.ndjson").write_bytes(b"\n".join(orjson.dumps(item) for item in items) + b"\n")
    return folder


def table(rows: list[tuple[str, ProcessUsage, int]], items: int) -> str:
    lines = [
        "| contender | wall s | items/s | CPU s | peak RSS MB | items in the API |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, usage, held in rows:
        lines.append(f"| {label} | {usage.wall_s:.1f} | {items / usage.wall_s:.0f} | {usage.cpu_s:.1f} | "
                     f"{usage.peak_rss_mb:.0f} | {held} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500, help="items per FeatureCollection call of terrapi-client")
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers of stac-fastapi-pgstac")
    args = parser.parse_args()
    workdir = make_workdir("stac-dlt-bench-publish-")
    catalog = CatalogFolder()
    joplin = catalog.files_of("joplin")
    provider = OidcTestProvider(workdir)
    server = PgstacServer(workdir / "pgstac", CatalogFolder(), workers=args.workers)
    proxy: AuthProxy | None = None
    os.environ["XDG_DATA_HOME"] = str(workdir / "xdg-data")
    (workdir / "xdg-data" / "terrabyte_auth").mkdir(parents=True)
    try:
        provider.start()
        server.workdir.mkdir()
        server.start()
        proxy = AuthProxy(workdir, server.url, provider.discovery_url)
        proxy.start()
        provider.settings.access_token_lifetime_s = 3600
        TokenCache(proxy.url, PUBLIC_CLIENT).put(provider.start_session())
        credentials = StacApiCredentials(issuer=provider.issuer, client_id=PUBLIC_CLIENT)
        api = StacTransactions(proxy.url, authorizer_for(proxy.url, credentials), 2, 0.1, 60)
        env = {
            "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(workdir / "dlt"),
            "SOURCES__STAC__CREDENTIALS__ISSUER": provider.issuer,
            "SOURCES__STAC__CREDENTIALS__CLIENT_ID": PUBLIC_CLIENT,
            "TERRABYTE_PRIVATE_API_URL": proxy.url, "TERRABYTE_AUTH_URL": f"{provider.issuer}/",
            "TERRABYTE_CLIENT_ID": PUBLIC_CLIENT,
        }  # fmt: skip
        rows = []
        contenders = {
            "ours: publish_pipeline.py (bulk items)": None,
            "terrapi-client, one item per call": TERRAPI_ONE_BY_ONE,
            f"terrapi-client, FeatureCollections of {args.batch}": TERRAPI_FEATURE_COLLECTIONS,
        }
        for number, (label, script) in enumerate(contenders.items()):
            collection_id = f"test-user.bench-publish-{number}"
            collection = {**joplin.collection(), "id": collection_id, "links": []}
            folder = write_source(workdir / collection_id, collection, bench_items(joplin, args.items, collection_id))
            if script is None:
                command = [str(PUBLISH), "--url", proxy.url, str(folder)]
            else:
                api.create_collection(collection)
                items_file = str(folder / "items.ndjson")
                command = ["-c", textwrap.dedent(script), items_file, collection_id, str(args.batch)]
            log(f"{label}: {args.items} items")
            usage = run_measured(label, command, workdir, env)
            rows.append((label, usage, sum(1 for _ in api.items(collection_id, 1000))))
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
        provider.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report = table(rows, args.items)
    ours, one_by_one, batched = (args.items / usage.wall_s for _, usage, _ in rows)
    verdict = "PASS" if ours >= TARGET * one_by_one else "FAIL"
    summary = (f"\nours / terrapi-client one item per call: {ours / one_by_one:.1f}x (target >= {TARGET:.0f}x: "
               f"{verdict}); ours / terrapi-client FeatureCollections: {ours / batched:.1f}x")  # fmt: skip
    print(report + summary)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report + summary + "\n")
    exact = all(held == args.items for _, _, held in rows)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
