"""One run of the benchmark: every contender once, one after another, against the same stack.

a. pystac-client, b. dlt's rest_api, c. rustac, d. ours (the main job) into DuckDB and into Postgres, then
e. ours again on d's DuckDB pipeline after the new items went into the server; they are taken out again
afterwards, so that every run (and a later reuse of the stack) starts from the same items.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.catalog import BenchData
from bench.contenders import POSTGRES_URL_VARIABLE
from bench.measure import Measurement, measure, measure_main_job
from bench.scenarios import SCENARIOS, shape_of
from bench.stack import BenchStack, delete_items, fresh_destination, insert_items, log

CONTENDERS = ("a", "b", "c", "d-duckdb", "d-postgres", "e", "f", "g", "h")
"""What `--only` chooses from; f and g are the catalog shapes of `bench/scenarios.py`, h the fast server of
`bench/fast_server.py`."""


@dataclass(frozen=True)
class Options:
    peer_limit: int
    """Page size that pystac-client, rest_api and rustac ask for."""
    page_size: int | None
    """Our source's page_size; None: its own default."""
    rest_api_max_items: int | None
    only: tuple[str, ...] = CONTENDERS
    """The contenders to run (e needs d-duckdb)."""


def one_run(stack: BenchStack, data: BenchData, options: Options, workdir: Path) -> dict[str, Measurement]:
    """Every chosen contender's measurement of this run, by contender key."""
    peers = ["--url", stack.url, "--peer-limit", str(options.peer_limit)]
    ours = ["--url", stack.url]
    our_env = ours_env(options)
    rest_api_cap = ["--max-items", str(options.rest_api_max_items)] if options.rest_api_max_items else []
    results: dict[str, Measurement] = {}
    if "a" in options.only:
        results["a"] = logged(measure("a", ["pystac-client", *peers], fresh_folder(workdir / "a")))
    if "b" in options.only:
        results["b"] = logged(measure("b", ["rest-api", *peers, *rest_api_cap], fresh_folder(workdir / "b")))
    if "c" in options.only:
        results["c"] = logged(measure("c", ["rustac", *peers], fresh_folder(workdir / "c")))
    if "d-duckdb" in options.only:
        duckdb = [*ours, "--destination", "duckdb"]
        results["d-duckdb"] = logged(measure_main_job("d-duckdb", duckdb, fresh_folder(workdir / "d-duckdb"), our_env))
    if "d-postgres" in options.only:
        url = fresh_destination(stack.cluster)
        postgres_env = {**our_env, POSTGRES_URL_VARIABLE: url, "DESTINATION__POSTGRES__CREDENTIALS": url}
        postgres = [*ours, "--destination", "postgres"]
        folder = fresh_folder(workdir / "d-postgres")
        results["d-postgres"] = logged(measure_main_job("d-postgres", postgres, folder, postgres_env))
    if "e" in options.only and "d-duckdb" in results:
        log(f"inserting {insert_items(stack.cluster, data.new_catalog)} new items into pgstac")
        try:
            before = int(results["d-duckdb"].report["items"])
            duckdb = [*ours, "--destination", "duckdb"]
            results["e"] = logged(measure_main_job("e", duckdb, workdir / "d-duckdb", our_env, items_before=before))
        finally:
            log(f"deleted the {delete_items(stack.cluster, data.new_catalog)} new items from pgstac again")
    return results


def ours_env(options: Options) -> dict[str, str]:
    """The environment of every run of ours: the page size, where the bench sets one."""
    return {"SOURCES__STAC__PAGE_SIZE": str(options.page_size)} if options.page_size else {}


def logged(measurement: Measurement) -> Measurement:
    """`measurement`, said on stderr."""
    log(
        f"{measurement.contender}: {measurement.items} items in {measurement.wall_s:.1f} s, "
        f"peak RSS {measurement.peak_rss_mb:.0f} MB; {measurement.report}"
    )
    return measurement


def fresh_folder(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def verification_errors(results: dict[str, Measurement], data: BenchData, options: Options) -> list[str]:
    """What a run got wrong: every contender must have read every item, ours exactly once each."""
    expected = {"a": data.items, "c": data.items, "h-a": data.items, "h-c": data.items}
    if options.rest_api_max_items is None:
        expected["b"] = data.items
    errors = [
        f"{key} counted {results[key].items} items, expected {count}"
        for key, count in expected.items()
        if key in results and results[key].items != count
    ]
    loads = {"d-duckdb": (data.items, data.items), "d-postgres": (data.items, data.items)}
    loads["e"] = (data.new_items, data.items + data.new_items)
    loads["h-d"], loads["h-again"] = (data.items, data.items), (0, data.items)
    for key in SCENARIOS:
        items = shape_of(key).items
        loads[key], loads[f"{key}-again"] = (items, items), (0, items)
    for key, (loaded, total) in loads.items():
        if key not in results:
            continue
        report = results[key].report
        if (results[key].items, report["items"], report["distinct"]) != (loaded, total, total):
            errors.append(
                f"{key} loaded {results[key].items} items, and its items table holds {report['items']} rows of "
                f"{report['distinct']} distinct (collection, id); expected {loaded}, and {total} of {total}"
            )
    return errors
