"""Publish STAC collections and items into a STAC API (the terrabyte private catalog, or any API with Transactions).

    python pipelines/publish_pipeline.py --url http://127.0.0.1:8081 tests/data/stac        # every collection folder
    python pipelines/publish_pipeline.py --collection alice.naip --dry-run tests/data/stac/naip
    python pipelines/publish_pipeline.py --delete-missing tests/data/stac/naip           # mirror: delete the rest
    python pipelines/publish_pipeline.py --collection-prefix alice. pipeline:terrabyte   # the main job's tables
    python pipelines/publish_pipeline.py alice-items.parquet                              # stac-geoparquet
    python pipelines/publish_pipeline.py create-collection collection.json
    python pipelines/publish_pipeline.py create-item alice.naip item.json
    python pipelines/publish_pipeline.py delete-item alice.naip <item id>
    python pipelines/publish_pipeline.py delete-collection alice.naip [--yes]

A source is a folder of `<collection>/collection.json` and `<collection>/items.ndjson[.gz]` (or one such collection
folder), a stac-geoparquet file, or `pipeline:<name>`: the `items` and `collections` tables a pipeline of this project
loaded (DuckDB or Postgres). Each collection is created when the API lacks it and updated when it differs; its
items are read from the API first, so that only new and changed ones are sent (upserts: a publish cut off and run
again ends exact).
Signs in as the main job does (`[sources.stac.credentials]`, or the login `terrabyte_pipeline.py login` keeps).
Exit codes: 0 all published; 1 an error, or a collection refused (the others are published); 3 published, but some
items were rejected (each said, with its reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dlt
import orjson
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_stac.errors import StacSourceError
from dlt_stac.publish import PublishCounts, Rejection, StacTransactions, stac_api, transactions_for
from dlt_stac.publish.checks import item_problem, publish_digest, published_content
from dlt_stac.publish.inputs import CollectionInput, inputs_of
from dlt_stac.publish.plan import item_changes
from dlt_stac.publish.prefixes import prefixes_of, token_claims
from dlt_stac.publish.transactions import PublishRefused, WriteRejected

from terrabyte_pipeline import print_error, terrabyte_credentials

PIPELINE_NAME = "stac_publish"
REJECTED_EXIT = 3
SHOWN_REJECTIONS = 20


@configspec
class PublishSettings(BaseConfiguration):
    """`[publish]` in .dlt/config.toml."""

    batch_size: int = 500
    """Items per write (one bulk request where the API has the bulk items endpoint)."""
    listing_page_size: int = 1000
    """Items per page when the collection's items are read to find what changed."""


class CollectionNotPublishable(StacSourceError):
    """A collection that is skipped while the others of the source are published."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the STAC API's landing page (default: [sources.stac] url)")
    parser.add_argument("--collection", help="publish the one collection of the source under this id")
    parser.add_argument("--collection-prefix", default="", help="publish each collection as <prefix><its id>")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    parser.add_argument(
        "--delete-missing", action="store_true", help="also delete the collection's items that the source lacks"
    )
    parser.add_argument(
        "source",
        help="a folder of collection folders or one collection folder, a stac-geoparquet file (.parquet), or "
        "pipeline:<name>, the tables a dlt pipeline of this project loaded (e.g. pipeline:terrabyte)",
    )
    return parser.parse_args(argv)


def writable_check(writer: StacTransactions, collection_id: str) -> None:
    """Raises when terrabyte's prefix rule, read from the access token, refuses writing the collection."""
    token = writer.authorizer.bearer_token()
    prefixes = prefixes_of(token_claims(token)) if token else None
    refusal = prefixes.refusal(collection_id) if prefixes else None
    if refusal:
        raise CollectionNotPublishable(f"Not publishing: {refusal}")


def collection_change(writer: StacTransactions, source: CollectionInput, collection_id: str, dry_run: bool) -> str:
    """What publishing the collection does: `created` where the API lacks it, `updated` where it holds it
    otherwise, else `unchanged`; done unless `dry_run`."""
    held = writer.collection(collection_id)
    if source.document is None:
        if held is None:
            raise CollectionNotPublishable(
                f"{source.where} holds no collection document, and the API has no collection `{collection_id}`: "
                "create it first (publish_pipeline.py create-collection <collection.json>)"
            )
        return "unchanged (the source has none)"
    document = {**published_content(source.document), "id": collection_id}
    if held is not None and publish_digest(held) == publish_digest(document):
        return "unchanged"
    if not dry_run:
        (writer.create_collection if held is None else writer.update_collection)(document)
    return "created" if held is None else "updated"


def publish_collection(
    pipeline: dlt.Pipeline,
    writer: StacTransactions,
    refusals: list[Rejection],
    source: CollectionInput,
    args: argparse.Namespace,
    settings: PublishSettings,
) -> PublishCounts:
    """Makes the API's collection hold what the source's collection holds; its counts."""
    collection_id = args.collection_prefix + (args.collection or source.collection_id)
    writable_check(writer, collection_id)
    collection_done = collection_change(writer, source, collection_id, args.dry_run)
    held = {item["id"]: publish_digest(item) for item in writer.items(collection_id, settings.listing_page_size)}
    counts = PublishCounts()
    changes = item_changes(source.items(), collection_id, held, counts, args.delete_missing)
    if args.dry_run:
        for _ in changes:
            pass
    else:
        refused_before = len(refusals)
        pipeline.run(dlt.resource(changes, name="items", max_table_nesting=0))
        counts.count_refusals(refusals[refused_before:], held)
    dry_run = " (dry run: what would change)" if args.dry_run else ""
    print(f"{collection_id}{dry_run}: collection {collection_done}; items {counts.summary()}")
    return counts


def print_rejections(rejections: list[Rejection]) -> None:
    for rejection in rejections[:SHOWN_REJECTIONS]:
        print(
            f"  rejected {rejection.collection}/{rejection.item_id or '(no id)'}: {rejection.reason}", file=sys.stderr
        )
    if len(rejections) > SHOWN_REJECTIONS:
        print(f"  ... and {len(rejections) - SHOWN_REJECTIONS} more", file=sys.stderr)


def api_url(args: argparse.Namespace) -> str:
    url = args.url or dlt.config.get("sources.stac.url")
    if not url:
        raise StacSourceError("no STAC API to publish to: pass --url or set [sources.stac] url in .dlt/config.toml")
    return str(url)


def writer_for(args: argparse.Namespace) -> StacTransactions:
    """The API's write endpoints, signed in as the main job signs in; `[destination.stac_api]` sets retries."""
    return transactions_for(url=api_url(args), credentials=terrabyte_credentials())


def publish(argv: list[str]) -> int:
    """Publishes each collection of the source; one that the API or the prefix rule refuses is said and skipped,
    an error that would refuse every collection (sign-in, a server that keeps failing) ends the publish."""
    args = parse_args(argv)
    rejections: list[Rejection] = []
    refused_collections = 0
    try:
        writer = writer_for(args)
        settings = resolve_configuration(PublishSettings(), sections=("publish",))
        sources = inputs_of(args.source, settings.listing_page_size)
        if args.collection and len(sources) > 1:
            raise StacSourceError(f"--collection names one collection, and {args.source} holds {len(sources)}")
        refusals: list[Rejection] = []
        pipeline = dlt.pipeline(PIPELINE_NAME, destination=stac_api(writer, refusals, settings.batch_size))
        if pipeline.has_pending_data:
            print("Completing what the last publish left unfinished first.")
            pipeline.run()
        for source in sources:
            try:
                rejections += publish_collection(pipeline, writer, refusals, source, args, settings).rejections
            except (CollectionNotPublishable, PublishRefused, WriteRejected) as error:
                print_error(error)
                refused_collections += 1
    except (StacSourceError, FileNotFoundError, PipelineStepFailed) as error:
        print_error(error.exception if isinstance(error, PipelineStepFailed) else error)
        return 1
    print_rejections(rejections)
    return 1 if refused_collections else REJECTED_EXIT if rejections else 0


def parse_operation_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="publish_pipeline.py", description="terrapi-client's operations, one each.")
    parser.add_argument("--url", help="the STAC API's landing page (default: [sources.stac] url)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-collection", help="create a collection from a JSON file").add_argument(
        "file", type=Path
    )
    create_item = commands.add_parser("create-item", help="create (or replace) an item from a JSON file")
    create_item.add_argument("collection")
    create_item.add_argument("file", type=Path)
    delete_item = commands.add_parser("delete-item", help="delete an item")
    delete_item.add_argument("collection")
    delete_item.add_argument("item_id")
    delete_collection = commands.add_parser("delete-collection", help="delete a collection and all its items")
    delete_collection.add_argument("collection")
    delete_collection.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser.parse_args(argv)


def confirmed(question: str) -> bool:
    """The user's answer to `question`; raises where there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise StacSourceError("no terminal to ask for confirmation on: pass --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def operation(writer: StacTransactions, args: argparse.Namespace) -> str:
    """Does what the operation's arguments say; the line that says what was done."""
    collection_id = args.collection if "collection" in args else orjson.loads(args.file.read_bytes())["id"]
    writable_check(writer, collection_id)
    if args.command == "create-collection":
        writer.create_collection(published_content(orjson.loads(args.file.read_bytes())))
        return f"created collection {collection_id}"
    if args.command == "create-item":
        item = orjson.loads(args.file.read_bytes())
        problem = item_problem(item) or next((r.reason for r in writer.upsert_items(collection_id, [item])), None)
        if problem:
            raise StacSourceError(f"item {item.get('id')!r} not created in {collection_id}: {problem}")
        return f"created item {collection_id}/{item['id']}"
    if args.command == "delete-item":
        rejection = writer.delete_item(collection_id, args.item_id)
        if rejection:
            raise StacSourceError(f"item {args.item_id!r} not deleted from {collection_id}: {rejection.reason}")
        return f"deleted item {collection_id}/{args.item_id}"
    if not (args.yes or confirmed(f"Delete collection {collection_id} and all its items?")):
        return f"kept collection {collection_id}"
    found = writer.delete_collection(collection_id)
    return f"deleted collection {collection_id}" if found else f"no collection {collection_id} to delete"


def operate(argv: list[str]) -> int:
    args = parse_operation_args(argv)
    try:
        print(operation(writer_for(args), args))
    except (StacSourceError, OSError, orjson.JSONDecodeError) as error:
        print_error(error)
        return 1
    return 0


def main(argv: list[str]) -> int:
    operations = {"create-collection", "create-item", "delete-item", "delete-collection"}
    if operations.intersection(argv[:3]):
        return operate(argv)
    return publish(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
