"""stac-fastapi-pgstac on a throwaway PostgreSQL cluster, loaded from a catalog folder."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from stack.catalog_folder import CatalogFolder
from stack.postgres import PostgresCluster
from stack.processes import ServerProcess, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVER_VENV = PROJECT_ROOT / ".venv-server"
LOADER_SCRIPT = Path(__file__).with_name("load_pgstac.py")
DATABASE = "pgstac"
APP_SETTINGS = {
    "ENABLE_TRANSACTIONS_EXTENSIONS": "true",
    # Hydrating items in the API instead of in the database pages about 3x faster.
    "USE_API_HYDRATE": "true",
    "STAC_FASTAPI_TITLE": "Local STAC API (stac-fastapi-pgstac)",
    "STAC_FASTAPI_DESCRIPTION": "Throwaway test server of the dlt STAC source",
    "STAC_FASTAPI_LANDING_ID": "local-pgstac",
    "STAC_FASTAPI_VERSION": "7.2.0",
}


@dataclass(frozen=True)
class RefusedItems:
    """Items of one collection that pgstac refused to load, for one reason."""

    collection: str
    reason: str
    ids: list[str]

    def __str__(self) -> str:
        shown = ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "")
        items = f"{len(self.ids)} item{'s' * (len(self.ids) != 1)}"
        return f"{items} of {self.collection} refused by pgstac: {self.reason} (ids {shown})"


def server_venv_program(name: str) -> Path:
    program = SERVER_VENV / "bin" / name
    if not program.exists():
        raise FileNotFoundError(f"{program} is missing: create the server's virtualenv with `make .venv-server`")
    return program


class PgstacServer:
    """`start()` creates the cluster, migrates pgstac, loads `data` and serves it; `stop()` removes it all.

    The cluster outlives the server's process only between `start()` and `stop()`. Tests get a
    database of their own in the same cluster with `cluster.create_database()`.
    """

    def __init__(self, workdir: Path, data: CatalogFolder, port: int | None = None, workers: int = 1) -> None:
        self.workdir = Path(workdir)
        self.data = data
        self.port = port or free_port()
        self.workers = workers
        self.cluster = PostgresCluster(self.workdir)
        self.process: ServerProcess | None = None
        self.refused: list[RefusedItems] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            self.cluster.init()
            self.cluster.start()
            self.cluster.create_database(DATABASE)
            self.load()
            self.process = ServerProcess(
                "stac-fastapi-pgstac", self._command(), self.workdir / "pgstac.log", self._env()
            )
            self.process.wait_until_ready(f"{self.url}/_mgmt/ping")
        except BaseException:
            self.stop()
            raise

    def load(self) -> None:
        """Migrates pgstac and loads every collection of the data folder with the items pgstac accepts; the
        others are in `refused`."""
        paths = [str(path) for files in self.data.collections for path in (files.collection_json, files.items_ndjson)]
        completed = subprocess.run(
            [str(server_venv_program("python")), str(LOADER_SCRIPT), *paths],
            env={**os.environ, **self.cluster.libpq_env(DATABASE)},
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"loading {self.data.root} into pgstac failed:\n{completed.stderr[-4000:]}")
        self.refused = [RefusedItems(**json.loads(line)) for line in completed.stdout.splitlines() if line.strip()]

    def add_timestamp_queryable(self, name: str) -> None:
        """Lets the API filter and sort on `properties.<name>` as a timestamp (`add_timestamp_queryable`)."""
        with psycopg2.connect(self.cluster.url(DATABASE)) as connection, connection.cursor() as cursor:
            cursor.execute("SET search_path TO pgstac, public")
            add_timestamp_queryable(cursor, name)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.cluster.destroy()

    def _command(self) -> list[str]:
        return [
            str(server_venv_program("uvicorn")),
            "stac_fastapi.pgstac.app:create_app",
            "--factory",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        return {**self.cluster.libpq_env(DATABASE), **APP_SETTINGS}


def add_timestamp_queryable(cursor: Any, name: str) -> None:
    """Lets the API filter and sort on `properties.<name>` as a timestamp, as a catalog configures pgstac for
    `updated`: pgstac compares a property that its queryables do not list as text. `cursor` is on the pgstac
    database, with `pgstac` first in its search path."""
    definition = json.dumps({"type": "string", "format": "date-time", "title": name})
    cursor.execute(
        "INSERT INTO queryables (name, definition, property_wrapper, property_index_type)"
        " SELECT %s, %s, 'to_tstz', 'BTREE' WHERE NOT EXISTS (SELECT 1 FROM queryables WHERE name = %s)",
        (name, definition, name),
    )
