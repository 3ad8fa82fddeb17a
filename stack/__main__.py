"""Drives the local STAC API stack from the shell; `make stack-up`, `make stack-down` and `make run` call it.

  python -m stack up [--data DIR] [--port 8081] [--server pgstac|rustac]   start and leave running
  python -m stack down [--port 8081]                                       stop and remove it
  python -m stack exec [--data DIR] [--server rustac] -- CMD ...           serve for one command
  python -m stack require-postgres                                         install or name what is missing
  python -m stack require-chromium                                         the same, for the dashboard's test

`exec` replaces `{url}` in CMD with the API's URL and also passes it as STAC_API_URL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stack.catalog_folder import SAMPLE_DATA, CatalogFolder
from stack.chromium import ensure_chromium_installed
from stack.debian import PackagesMissing
from stack.pgstac import PgstacServer
from stack.postgres import PostgresCluster, ensure_postgres_installed
from stack.processes import make_workdir, port_is_taken, stop_server_from_pidfile
from stack.rustac import RustacServer

Server = PgstacServer | RustacServer


def stack_workdir(port: int) -> Path:
    """Where `up` keeps the stack on `port`, so that `down` finds it from the port alone."""
    return Path(tempfile.gettempdir()) / f"stac-dlt-stack-{port}"


def make_server(kind: str, workdir: Path, data: Path, port: int | None, workers: int = 1) -> Server:
    folder = CatalogFolder(data)
    if kind == "pgstac":
        return PgstacServer(workdir, folder, port=port, workers=workers)
    return RustacServer(workdir, folder, port=port)


def up(args: argparse.Namespace) -> int:
    workdir = stack_workdir(args.port)
    if workdir.exists() or port_is_taken(args.port):
        print(f"port {args.port} is in use (stack folder: {workdir}); `make stack-down PORT={args.port}` first")
        return 1
    server = make_server(args.server, workdir, args.data, args.port, args.workers)
    workdir.mkdir()
    started = time.monotonic()
    try:
        server.start()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    refused = server.refused if isinstance(server, PgstacServer) else []
    for refusal in refused:
        print(refusal)
    items = sum(len(ids) for ids in server.data.item_ids_by_collection().values()) - sum(
        len(refusal.ids) for refusal in refused
    )
    print(f"{args.server} serves {len(server.data.collections)} collections, {items} items from {server.data.root}")
    print(f"started in {time.monotonic() - started:.1f} s; logs and cluster in {workdir}")
    print(f"STAC API: {server.url}")
    return 0


def down(args: argparse.Namespace) -> int:
    workdir = stack_workdir(args.port)
    if not workdir.exists():
        print(f"no stack on port {args.port} ({workdir} does not exist)")
        return 0
    for pidfile in workdir.glob("*.pid"):
        stop_server_from_pidfile(pidfile)
    PostgresCluster(workdir).destroy()
    shutil.rmtree(workdir)
    print(f"stopped the stack on port {args.port} and removed {workdir}")
    return 0


def exec_with_server(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("exec needs a command after --")
        return 2
    workdir = make_workdir("stac-dlt-exec-")
    server = make_server(args.server, workdir, args.data, port=None)
    try:
        server.start()
        command = [part.replace("{url}", server.url) for part in command]
        return subprocess.run(command, env={**os.environ, "STAC_API_URL": server.url}).returncode
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def require(what: str, needed_by: str, ensure: Callable[[], Path]) -> int:
    """Installs `what` where it is missing and may be; says where it is, or why not."""
    try:
        found = ensure()
    except PackagesMissing as missing:
        print(f"{needed_by} need {what}: {missing}")
        return 1
    print(f"{what}: {found}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True)

    up_parser = commands.add_parser("up", help="start a stack and leave it running")
    up_parser.add_argument("--port", type=int, default=8081)
    up_parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (pgstac only)")
    down_parser = commands.add_parser("down", help="stop the stack on --port and remove its cluster")
    down_parser.add_argument("--port", type=int, default=8081)
    exec_parser = commands.add_parser("exec", help="start a stack, run a command against it, stop it")
    exec_parser.add_argument("command", nargs=argparse.REMAINDER)
    for parser_with_server, default_server in ((up_parser, "pgstac"), (exec_parser, "rustac")):
        parser_with_server.add_argument("--data", type=Path, default=SAMPLE_DATA, help="catalog folder to serve")
        parser_with_server.add_argument("--server", choices=("pgstac", "rustac"), default=default_server)
    commands.add_parser("require-postgres", help="install PostgreSQL 15 + PostGIS if missing and possible")
    commands.add_parser("require-chromium", help="install Chromium (for the dashboard's test) if missing and possible")

    up_parser.set_defaults(run=up)
    down_parser.set_defaults(run=down)
    exec_parser.set_defaults(run=exec_with_server)
    commands.choices["require-postgres"].set_defaults(
        run=lambda _: require("PostgreSQL 15 with PostGIS 3", "The tests", ensure_postgres_installed)
    )
    commands.choices["require-chromium"].set_defaults(
        run=lambda _: require("Chromium", "The dashboard's tests", ensure_chromium_installed)
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return int(args.run(args))
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
