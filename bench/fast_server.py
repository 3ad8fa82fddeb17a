"""h. The client-bound scenario: the same items from a server that costs close to nothing per page.

rustac's in-memory server (`rustac serve`, the `demo` extra) holds the bench's catalog in memory and answers a
page of 1,000 items in a few milliseconds, where stac-fastapi-pgstac's Python takes hundreds: against it, what
a contender's wall time and CPU measure is the client's own work. pystac-client (`h-a`), rustac's `search_to`
(`h-c`) and ours into DuckDB (`h-d`) read every item of it; then ours runs again with nothing new (`h-again`),
which is our start-up cost: imports, the API's probes, dlt's state sync, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.catalog import BenchData
from bench.measure import Measurement, measure, measure_main_job
from bench.stack import log
from stack import RustacServer

CONTENDERS = ("h-a", "h-c", "h-d", "h-again")


@contextmanager
def fast_server(data: BenchData, workdir: Path) -> Iterator[str]:
    """The URL of a `rustac serve` holding `data`'s catalog while in the block."""
    folder = workdir / "rustac"
    folder.mkdir(parents=True, exist_ok=True)
    server = RustacServer(folder, data.catalog)
    log(f"h: starting rustac serve with {data.items} items ...")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def fast_server_run(
    url: str, run: int, peer_limit: int, workdir: Path, our_env: dict[str, str]
) -> dict[str, Measurement]:
    """One run of every contender of the scenario against the fast server at `url`."""
    peers = ["--url", url, "--peer-limit", str(peer_limit)]
    folder = workdir / f"h-{run}"
    results = {
        "h-a": measure("h-a", ["pystac-client", *peers], fresh(folder / "a")),
        "h-c": measure("h-c", ["rustac", *peers], fresh(folder / "c")),
    }
    ours = ["--url", url, "--destination", "duckdb"]
    first = measure_main_job("h-d", ours, fresh(folder / "d"), our_env)
    results["h-d"] = first
    results["h-again"] = measure_main_job("h-again", ours, folder / "d", our_env, items_before=first.items)
    log(
        "h run {}: {}".format(
            run + 1, ", ".join(f"{key} {m.wall_s:.1f} s, {m.cpu_s:.1f} s CPU" for key, m in results.items())
        )
    )
    return results


def fresh(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
