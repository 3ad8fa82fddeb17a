"""One run of the benchmark: every contender once, one after another, against the same stack.

a. pystac-client, b. dlt's rest_api, c. rustac, d. ours into DuckDB and into Postgres, then e. ours
again on d's DuckDB pipeline after the new items went into the server; they are taken out again
afterwards, so that every run (and a later reuse of the stack) starts from the same items.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.catalog import BenchData
from bench.contenders import POSTGRES_URL_VARIABLE
from bench.measure import Measurement, measure
from bench.stack import BenchStack, delete_items, fresh_destination, insert_items, log

CONTENDERS = ("a", "b", "c", "d-duckdb", "d-postgres", "e")


@dataclass(frozen=True)
class Options:
    peer_limit: int
    """Page size that pystac-client, rest_api and rustac ask for."""
    page_size: int | None
    """Our source's page_size; None: its own default."""
    rest_api_max_items: int | None


def one_run(stack: BenchStack, data: BenchData, options: Options, workdir: Path) -> dict[str, Measurement]:
    """Every contender's measurement of this run, by contender key."""
    peers = ["--url", stack.url, "--peer-limit", str(options.peer_limit)]
    ours = ["ours", "--url", stack.url, *(["--page-size", str(options.page_size)] if options.page_size else [])]
    rest_api_cap = ["--max-items", str(options.rest_api_max_items)] if options.rest_api_max_items else []
    results = {
        "a": logged("a", ["pystac-client", *peers], fresh_folder(workdir / "a")),
        "b": logged("b", ["rest-api", *peers, *rest_api_cap], fresh_folder(workdir / "b")),
        "c": logged("c", ["rustac", *peers], fresh_folder(workdir / "c")),
        "d-duckdb": logged("d-duckdb", [*ours, "--destination", "duckdb"], fresh_folder(workdir / "d-duckdb")),
    }
    postgres = {POSTGRES_URL_VARIABLE: fresh_destination(stack.cluster)}
    results["d-postgres"] = logged(
        "d-postgres", [*ours, "--destination", "postgres"], fresh_folder(workdir / "d-postgres"), postgres
    )
    log(f"inserting {insert_items(stack.cluster, data.new_catalog)} new items into pgstac")
    try:
        results["e"] = logged("e", [*ours, "--destination", "duckdb"], workdir / "d-duckdb")
    finally:
        log(f"deleted the {delete_items(stack.cluster, data.new_catalog)} new items from pgstac again")
    return results


def logged(key: str, arguments: list[str], workdir: Path, env: dict[str, str] | None = None) -> Measurement:
    """`measure`, saying on stderr what it measured."""
    measurement = measure(key, arguments, workdir, env)
    log(
        f"{key}: {measurement.items} items in {measurement.wall_s:.1f} s, "
        f"peak RSS {measurement.peak_rss_mb:.0f} MB; {measurement.report}"
    )
    return measurement


def fresh_folder(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def verification_errors(results: dict[str, Measurement], data: BenchData, options: Options) -> list[str]:
    """What a run got wrong: every contender must have read every item, ours exactly once each."""
    expected = {"a": data.items, "c": data.items}
    if options.rest_api_max_items is None:
        expected["b"] = data.items
    errors = [
        f"{key} counted {results[key].items} items, expected {count}"
        for key, count in expected.items()
        if results[key].items != count
    ]
    loads = {"d-duckdb": (data.items, data.items), "d-postgres": (data.items, data.items)}
    loads["e"] = (data.new_items, data.items + data.new_items)
    for key, (loaded, total) in loads.items():
        report = results[key].report
        if (report["loaded"], report["items"], report["distinct"]) != (loaded, total, total):
            errors.append(
                f"{key} loaded {report['loaded']} items, and its items table holds {report['items']} rows of "
                f"{report['distinct']} distinct (collection, id); expected {loaded}, and {total} of {total}"
            )
    return errors
