"""The benchmark's STAC API: stac-fastapi-pgstac from `stack`, started for a run or reused.

A stack on the bench port that already serves exactly the benchmark's items is reused (and left
running); otherwise one is started in the folder where `python -m stack up` would put it, so
that `make stack-down PORT=<port>` can stop one that `--keep-stack` left running.
The same cluster holds the Postgres destination database and takes the incremental run's new items.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2

from bench.catalog import BenchData
from stack import CatalogFolder, PgstacServer, PostgresCluster
from stack.__main__ import stack_workdir
from stack.pgstac import APP_SETTINGS, DATABASE
from stack.processes import free_port, port_is_taken

DESTINATION_DATABASE = "bench_destination"


@dataclass(frozen=True)
class BenchStack:
    url: str
    cluster: PostgresCluster
    workers: int | None
    """None when a reused stack's server command line cannot be read."""
    reused: bool
    start_s: float
    """Seconds to create the cluster, load the items and start the server (0 when reused)."""

    @property
    def api_hydrate(self) -> str:
        return APP_SETTINGS["USE_API_HYDRATE"]

    @property
    def version(self) -> str:
        return APP_SETTINGS["STAC_FASTAPI_VERSION"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def bench_stack(data: BenchData, port: int, workers: int, keep: bool) -> Iterator[BenchStack]:
    """A stack serving `data`'s catalog: the one on `port` if it serves exactly those items, else a new one.

    A new stack is stopped on leaving, also on errors and Ctrl-C; `keep` leaves it running after a run
    that ended without an error.
    """
    url = f"http://127.0.0.1:{port}"
    if port_is_taken(port) and serves_exactly(url, data.items_by_collection):
        log(f"reusing the stack at {url}, which serves exactly the {data.items} items")
        workdir = stack_workdir(port)
        yield BenchStack(url, running_cluster(workdir), running_workers(workdir), True, 0.0)
        return
    if port_is_taken(port) or stack_workdir(port).exists():
        log(f"port {port} is taken or {stack_workdir(port)} exists (another stack, or a stale one); using a free port")
        port = free_port()
    workdir = stack_workdir(port)
    workdir.mkdir()  # before `try`: if the folder is another stack's, it must fail without removing it
    workdir.chmod(0o755)  # the cluster runs as the `postgres` user when we are root
    server = PgstacServer(workdir, data.catalog, port=port, workers=workers)
    log(f"starting stac-fastapi-pgstac on port {port} ({workers} worker(s)) with {data.items} items ...")
    started = time.monotonic()
    kept = False
    try:
        server.start()
        stack = BenchStack(server.url, server.cluster, workers, False, time.monotonic() - started)
        log(f"stack up in {stack.start_s:.1f} s")
        yield stack
        kept = keep
    finally:
        if kept:
            log(f"the stack stays up at {server.url}; stop it with `make stack-down PORT={port}`")
        else:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def running_cluster(workdir: Path) -> PostgresCluster:
    """The cluster of a stack that another process started, found from its folder."""
    pidfile = workdir / "postgres" / "data" / "postmaster.pid"
    if not pidfile.exists():
        raise RuntimeError(f"the stack's API answers, but its cluster is not running in {workdir}")
    port = int(pidfile.read_text().splitlines()[3])  # postmaster.pid: pid, datadir, start time, port, ...
    return PostgresCluster(workdir, port=port)


def running_workers(workdir: Path) -> int | None:
    """The `--workers` of a stack that another process started, from its server's command line."""
    try:
        pid = (workdir / "pgstac.pid").read_text().strip()
        command = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        return int(command[command.index("--workers") + 1])
    except (OSError, ValueError, IndexError):
        return None


def serves_exactly(url: str, items_by_collection: dict[str, int]) -> bool:
    """True if the API counts exactly these items per collection, and no others."""
    try:
        served = {collection: matched_items(url, [collection]) for collection in items_by_collection}
        total = matched_items(url, [])
    except (OSError, ValueError, KeyError):
        return False
    return served == items_by_collection and total == sum(items_by_collection.values())


def matched_items(url: str, collections: list[str]) -> int:
    """The API's `numberMatched` for a search of these collections (all when empty).

    pgstac caches counts per query for a day, so the query carries a datetime range that ends now,
    which matches every item and makes the query (and its count) new each time.
    """
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    parameters = {"limit": "1", "datetime": f"1900-01-01T00:00:00Z/{now}"}
    if collections:
        parameters["collections"] = ",".join(collections)
    with urllib.request.urlopen(f"{url}/search?{urllib.parse.urlencode(parameters)}", timeout=60) as response:
        return int(json.load(response)["numberMatched"])


def fresh_destination(cluster: PostgresCluster, name: str = DESTINATION_DATABASE) -> str:
    """An empty database in the stack's cluster (by default for the Postgres destination), as a postgresql:// URL."""
    drop_destination(cluster, name)
    cluster.create_database(name)
    return cluster.url(name)


def drop_destination(cluster: PostgresCluster, name: str = DESTINATION_DATABASE) -> None:
    connection = psycopg2.connect(cluster.url("postgres"))
    connection.autocommit = True  # DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        connection.close()


def insert_items(cluster: PostgresCluster, catalog: CatalogFolder) -> int:
    """Inserts the catalog's items into pgstac with its own `create_items`, as its loader does; returns how many."""
    items: list[dict[str, Any]] = [item for files in catalog.collections for item in files.items()]
    with pgstac_cursor(cluster) as cursor:
        cursor.execute("SELECT pgstac.create_items(%s::jsonb)", [json.dumps(items)])
    return len(items)


def delete_items(cluster: PostgresCluster, catalog: CatalogFolder) -> int:
    """Deletes the catalog's items from pgstac again; returns how many were deleted."""
    deleted = 0
    with pgstac_cursor(cluster) as cursor:
        for collection, ids in catalog.item_ids_by_collection().items():
            cursor.execute("DELETE FROM pgstac.items WHERE collection = %s AND id = ANY(%s)", [collection, list(ids)])
            deleted += cursor.rowcount
    return deleted


@contextmanager
def pgstac_cursor(cluster: PostgresCluster) -> Iterator[Any]:
    """A cursor on the pgstac database whose work is committed on leaving without an error."""
    connection = psycopg2.connect(cluster.url(DATABASE), options="-c search_path=pgstac,public")
    try:
        with connection, connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()
