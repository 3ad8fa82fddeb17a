"""The main job: STAC collections and items from the terrabyte STAC API (or any STAC API) into DuckDB or Postgres.

    python pipelines/terrabyte_pipeline.py                                  # [sources.stac] url from .dlt/config.toml
    python pipelines/terrabyte_pipeline.py --url http://127.0.0.1:8081 --collections naip joplin
    python pipelines/terrabyte_pipeline.py --destination postgres --since 2024-01-01T00:00:00Z
    python pipelines/terrabyte_pipeline.py login                            # once, for a private API
    python pipelines/terrabyte_pipeline.py collections                      # what the API shows you

Runs are incremental on item datetime, per collection; see README.md.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class WithoutDataFrames(importlib.abc.MetaPathFinder):
    """Keeps pandas and numpy out of the main job's process: it makes no DataFrame or array, but pyarrow imports
    both (installed for `.df()` and the dashboard) as dlt imports it, 0.2 s and 65 MB of every run. Told they are
    missing, pyarrow and dlt go on without them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in ("pandas", "numpy"):
            raise ModuleNotFoundError(f"No module named {fullname!r} in the main job", name=fullname)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, WithoutDataFrames())

import argparse
import gc
from typing import Any

import dlt
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import ValueNotSecretException
from dlt.common.configuration.specs import BaseConfiguration
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_stac import stac
from dlt_stac.auth import StacApiCredentials
from dlt_stac.auth.device_login import login_and_cache
from dlt_stac.auth.oidc import DeviceAuthorization
from dlt_stac.errors import LoginNeeded, StacSourceError
from dlt_stac.runs import PackageRows, RunReport, run_in_packages
from dlt_stac.tables.spatial import (
    DuckdbSpatialUnavailable,
    create_geometry_indexes,
    enable_postgis,
    install_duckdb_spatial,
    with_postgis_geometry,
)

from duckdb_lock import held_file_of, lock_settings, wait_for_the_duckdb_file
from duckdb_merge import duckdb_keys_only_dedup
from list_collections import list_collections
from process_memory import MemorySettings, keep_less_freed_memory, memory_settings
from progress import PROGRESS_CHOICES, RunProgress, run_progress
from run_lock import RUN_IN_PROGRESS_EXIT, RunInProgress, only_run, run_lock_settings

PIPELINE_NAME = "terrabyte"
DATASET_NAME = "terrabyte_stac"
TERRABYTE_ISSUER = "https://auth.terrabyte.lrz.de/realms/terrabyte"
TERRABYTE_CLIENT_ID = "de.lrz.terrabyte.stac"
LOGIN_COMMAND = "python pipelines/terrabyte_pipeline.py login"


@configspec
class TerrabyteCredentials(StacApiCredentials):
    """The source's credentials, with terrabyte's Keycloak realm and public client as the defaults of `issuer`
    and `client_id` (terrapi's): `[sources.stac.credentials]` in .dlt/secrets.toml overrides them."""

    issuer: str | None = TERRABYTE_ISSUER
    client_id: str | None = TERRABYTE_CLIENT_ID


def terrabyte_credentials() -> TerrabyteCredentials:
    return resolve_configuration(TerrabyteCredentials(), sections=("sources", "stac"))


@configspec
class GeometrySettings(BaseConfiguration):
    """`[main_job]` in .dlt/config.toml."""

    postgis: bool = True
    """Into Postgres: `geometry` as a PostGIS geometry (PostGIS enabled in the database where it is not yet)."""


def spatial_sql_prepared(pipeline: dlt.Pipeline, source: Any) -> Any:
    """The source, and its destination made ready for spatial SQL on the items' footprints (`dlt_stac.tables.spatial`):
    DuckDB's spatial extension installed; in Postgres, PostGIS enabled and `geometry` a PostGIS geometry, unless
    `[main_job] postgis = false`. DuckDB's load needs no spatial extension: where it cannot be installed, the
    job says so and goes on."""
    destination = pipeline.destination.destination_name
    if destination == "duckdb":
        try:
            install_duckdb_spatial()
        except DuckdbSpatialUnavailable as error:
            print(f"warning: {error}. Spatial SQL (ST_*) needs it; the load goes on.", file=sys.stderr)
    if destination == "postgres" and resolve_configuration(GeometrySettings(), sections=("main_job",)).postgis:
        enable_postgis(pipeline)
        return with_postgis_geometry(source)
    return source


def login_advice(error: BaseException) -> str | None:
    """How to log in, when a login resolves `error` (or the error that caused it)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, LoginNeeded):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    if cause.replaces_configured_token:
        return (
            f"To log in: run `{LOGIN_COMMAND} --show-refresh-token` and put the refresh token it prints into "
            ".dlt/secrets.toml in place of the old one."
        )
    return f"To log in: run `{LOGIN_COMMAND}` once; runs on this machine then use the refresh token it keeps."


def print_error(error: BaseException) -> None:
    if held := held_file_of(error):  # dlt words it as a connection problem: credentials, the internet
        print(f"error: {held.advice()}", file=sys.stderr)
        return
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, ValueNotSecretException):
        print(
            f"dlt reads `{error.key}` from .dlt/secrets.toml or the environment variable "
            f"{error.key.upper().replace('.', '__')}, not from {error.provider_name}: move it there.",
            file=sys.stderr,
        )
    if advice := login_advice(error):
        print(advice, file=sys.stderr)


def with_job_settings(pipeline: dlt.Pipeline, settings: MemorySettings) -> dlt.Pipeline:
    """The pipeline; into DuckDB, with the job's `[main_job.duckdb]` settings added to those of the user's, and a
    merge that deduplicates a package by its keys alone (`duckdb_merge.py`).

    dlt resolves DuckDB's credentials as it would for the run (the file from `[destination.duckdb] credentials` in
    secrets.toml, `DESTINATION__DUCKDB__CREDENTIALS` or a `duckdb:///` URL, else `<pipeline_name>.duckdb`; the
    user's `global_config`, `extensions`, `pragmas`), once: a credentials object handed to dlt is taken as it is.
    A setting the user gave wins over the job's.
    """
    if pipeline.destination.destination_name != "duckdb":
        return pipeline
    credentials = pipeline.destination_client().config.credentials
    credentials.global_config = {**settings.duckdb, **(credentials.global_config or {})}
    return dlt.pipeline(
        pipeline_name=pipeline.pipeline_name,
        destination=duckdb_keys_only_dedup(credentials=credentials),
        dataset_name=pipeline.dataset_name,
        progress=pipeline.collector,
    )


COMMANDS = """commands (each with its own --help):
  login        log in on any browser once and keep the refresh token (a private API)
  collections  list the collections the API shows you, with their item counts
without a command, the job loads the API's collections and items."""


def pipeline_name_of(destination: str) -> str:
    """`terrabyte` into DuckDB (its file `terrabyte.duckdb`), `terrabyte_<destination>` into another, so that runs
    into different destinations keep their own state (dlt keeps one destination per pipeline)."""
    return PIPELINE_NAME if destination == "duckdb" else f"{PIPELINE_NAME}_{destination}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="the STAC API's landing page (default: [sources.stac] url)")
    parser.add_argument("--collections", nargs="+", help="collection ids, space or comma separated (default: all)")
    parser.add_argument("--since", help="initial datetime cursor, RFC 3339 (default: the full history)")
    parser.add_argument("--until", help="end of the window, RFC 3339: a backfill that leaves the cursors alone")
    parser.add_argument(
        "--package-size", type=int, help="items per load package (default: [sources.stac] package_size)"
    )
    parser.add_argument("--destination", default="duckdb", help="any dlt destination name (default: duckdb)")
    parser.add_argument(
        "--pipeline-name",
        help=f"dlt pipeline name: its state, and for DuckDB its file <name>.duckdb (default: {PIPELINE_NAME} into "
        f"DuckDB, {PIPELINE_NAME}_<destination> into another)",
    )
    parser.add_argument("--dataset", default=DATASET_NAME, help=f"dataset (schema) name (default: {DATASET_NAME})")
    parser.add_argument("--full-refresh", action="store_true", help="drop this source's tables and state first")
    parser.add_argument(
        "--progress",
        choices=PROGRESS_CHOICES,
        default="auto",
        help="items loaded of the total, rate and time left: one line redrawn (bar), a line per load package and "
        "per minute (lines), none; auto: bar on a terminal, else lines (default: auto)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress, only the summary (--progress none)")
    parser.add_argument(
        "--reconcile",
        action="store_true",
        default=None,
        help="also load what the tables lack, reload what changed and delete what the API no longer has"
        " (reads every item once; default: [sources.stac] reconcile)",
    )
    return parser.parse_args(argv)


def source_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Only what was given on the command line, so that config.toml supplies the rest."""
    collections = [part for value in args.collections or [] for part in value.split(",") if part]
    given = {
        "url": args.url,
        "collections": collections or None,
        "since": args.since,
        "until": args.until,
        "package_size": args.package_size,
        "reconcile": args.reconcile,
    }
    return {key: value for key, value in given.items() if value is not None}


def collection_summary(pipeline: dlt.Pipeline) -> list[tuple[Any, ...]]:
    """Items per collection with their time range, read back from the destination."""
    with pipeline.sql_client() as client:
        items = client.make_qualified_table_name("items")
        return [
            tuple(row)
            for row in client.execute_sql(
                "SELECT collection, COUNT(*), MIN(COALESCE(datetime, start_datetime)),"
                " MAX(COALESCE(datetime, end_datetime, start_datetime))"
                f" FROM {items} GROUP BY collection ORDER BY collection"
            )
            or []
        ]


def rows_text(rows: dict[str, int]) -> str:
    """Rows per table of the source's own tables, dlt's bookkeeping tables left out."""
    shown = {table: count for table, count in sorted(rows.items()) if not table.startswith("_dlt")}
    return ", ".join(f"{table} {count}" for table, count in shown.items()) or "no rows"


def package_line(package: PackageRows) -> str:
    return f"load package {package.load_id}: {rows_text(package.rows)}"


def print_progress_end(pipeline: dlt.Pipeline) -> None:
    if isinstance(pipeline.collector, RunProgress):
        pipeline.collector.close()


def print_summary(pipeline: dlt.Pipeline, report: RunReport) -> None:
    for resumed in report.resumed:
        written = ", ".join(table for table in resumed.tables if not table.startswith("_dlt"))
        print(f"Resumed: completed load package {resumed.load_id} ({written}), which an interrupted run had left.")
    if report.restored:
        print(f"Restored: {report.restored}.")
    for package in report.packages:
        print(f"Loaded {package_line(package)}")
    rows = report.rows()
    extracted = f"{len(report.packages)} load package{'s' * (len(report.packages) != 1)}"
    also_resumed = f", and {len(report.resumed)} resumed" if report.resumed else ""
    print(f"\nRows loaded this run: {rows_text(rows)} ({extracted}{also_resumed})")
    if read := report.read:
        pages = read.get("pages_read", 0)
        print(f"Read from the API: {read.get('items_read', 0)} items in {pages} page{'s' * (pages != 1)}")
    tables = sorted(pipeline.default_schema.data_table_names())
    print(f"Tables in {pipeline.dataset_name} ({pipeline.destination.destination_name}): {', '.join(tables)}")
    if "items" in tables:
        print(f"\n{'collection':<32} {'items':>8}  time range")
        for collection, count, first, last in collection_summary(pipeline):
            print(f"{collection:<32} {count:>8}  {first} .. {last}")
    if rows.get("rejected_items"):
        print(f"\n{rows['rejected_items']} malformed items were set aside in the `rejected_items` table.")
    if report.reconciled is not None:
        print(f"\n{reconcile_summary(report)}")
    if by_datetime := sorted(key for key, field in report.cursor_fields.items() if field == "datetime"):
        print(f"\n{datetime_cursor_note(by_datetime, len(report.cursor_fields))}")


def reconcile_summary(report: RunReport) -> str:
    """What the reconcile changed, per collection."""
    counts = report.reconciled or {}
    if not counts and not report.collections_removed:
        return "Reconciled: the tables held what the API serves."
    lines = ["Reconciled with the API:"]
    lines += [
        f"{collection:<32} {kinds['added']:>8} added {kinds['changed']:>8} changed {kinds['removed']:>8} removed"
        for collection, kinds in sorted(counts.items())
    ]
    if report.collections_removed:
        lines.append(f"Collections removed with their items: {', '.join(report.collections_removed)}")
    return "\n".join(lines)


def datetime_cursor_note(collections: list[str], total: int) -> str:
    """What loading by `datetime` leaves out, said once per run."""
    which = "All collections load" if len(collections) == total else f"{len(collections)} of {total} collections load"
    named = f" ({', '.join(collections[:5])}{', ...' if len(collections) > 5 else ''})"
    return (
        f"{which} by `datetime`{named}: an incremental run sees an edit, or an item added with a datetime before "
        "the collection's cursor, only where the item carries `updated` and the API filters on it: a --reconcile "
        "run loads the others."
    )


def parse_login_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="terrabyte_pipeline.py login",
        description="Log in on any browser (OAuth2 device login) and keep the refresh token for later runs, "
        "in terrapi's token cache.",
    )
    parser.add_argument("--url", help="the STAC API's landing page (default: [sources.stac] url)")
    parser.add_argument("--show-refresh-token", action="store_true", help="print the refresh token, for secrets.toml")
    return parser.parse_args(argv)


def show_device_instructions(authorization: DeviceAuthorization) -> None:
    print(f"To log in, open {authorization.verification_uri_complete or authorization.verification_uri}")
    print(f"(or open {authorization.verification_uri} and enter the code {authorization.user_code}).")
    print("Waiting for your approval ...", flush=True)


def login(argv: list[str]) -> int:
    args = parse_login_args(argv)
    url = args.url or dlt.config.get("sources.stac.url")
    if not url:
        print(
            "error: no STAC API to log in to: pass --url or set [sources.stac] url in .dlt/config.toml", file=sys.stderr
        )
        return 1
    try:
        cache = login_and_cache(url, terrabyte_credentials(), show_device_instructions)
    except StacSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Logged in. The refresh token for {cache.key} is stored in {cache.store.path}")
    print("(readable by you only, shared with terrapi); runs on this machine use it.")
    print("For scheduled runs elsewhere, put it into .dlt/secrets.toml:")
    print("\n    [sources.stac.credentials]")
    print(f'    refresh_token = "{cache.get() if args.show_refresh_token else "<the refresh token>"}"\n')
    if not args.show_refresh_token:
        print("Run login with --show-refresh-token to print it.")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["login"]:
        return login(argv[1:])
    if argv[:1] == ["collections"]:
        return list_collections(argv[1:], terrabyte_credentials())
    args = parse_args(argv)
    settings = memory_settings()
    keep_less_freed_memory(settings)
    pipeline_name = args.pipeline_name or pipeline_name_of(args.destination)
    try:
        with only_run(pipeline_name, run_lock_settings().run_lock_wait_s):
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name,
                destination=args.destination,
                dataset_name=args.dataset,
                progress=run_progress("none" if args.quiet else args.progress),
            )
            return load(pipeline, args, settings)
    except RunInProgress as error:
        print(f"error: {error}", file=sys.stderr)
        return RUN_IN_PROGRESS_EXIT


def load(pipeline: dlt.Pipeline, args: argparse.Namespace, settings: MemorySettings) -> int:
    """The job's run: its exit code."""
    try:
        pipeline = with_job_settings(pipeline, settings)
        wait_for_the_duckdb_file(pipeline, lock_settings().duckdb_lock_wait_s)
        source = spatial_sql_prepared(pipeline, stac(**source_arguments(args), credentials=terrabyte_credentials()))
        report = run_in_packages(pipeline, source, refresh="drop_sources" if args.full_refresh else None)
        if pipeline.destination.destination_name == "postgres":
            create_geometry_indexes(pipeline)
    except (StacSourceError, PipelineStepFailed, DestinationConnectionError, ValueNotSecretException) as error:
        print_progress_end(pipeline)
        print_error(error)
        return 1
    print_progress_end(pipeline)
    print_summary(pipeline, report)
    return 0


if __name__ == "__main__":
    # The objects alive after the imports (dlt's modules: most of the process's) and at the end live until the
    # exit: frozen, the collector's full passes during the run and its passes at exit leave them out. That takes
    # 0.4 s off a run with nothing new (1.9 s -> 1.5 s, README's Performance section).
    gc.freeze()
    exit_code = main(sys.argv[1:])
    gc.freeze()
    sys.exit(exit_code)
