"""The results as one markdown document: the table, the ratios, the targets and the settings."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version

from bench.catalog import BenchData
from bench.measure import PROJECT_ROOT, Measurement
from bench.runs import Options
from bench.stack import BenchStack

Runs = list[dict[str, Measurement]]
ROWS = ("a", "b", "c", "d-duckdb", "d-postgres", "e", "f", "f-again", "g", "g-again", "h-a", "h-c", "h-d", "h-again")
SCENARIO_LABELS = {
    "f": "f. ours, first load of 1000 collections of 3 items -> DuckDB",
    "f-again": "f. ours, the run after it, nothing new",
    "g": "g. ours, first load of 20000 items sharing one datetime -> DuckDB",
    "g-again": "g. ours, the run after it, nothing new",
    "h-a": "h. fast server (rustac serve): pystac-client `items_as_dicts`",
    "h-c": "h. fast server: rustac `search_to` -> stac-geoparquet per collection",
    "h-d": "h. fast server: ours -> DuckDB",
    "h-again": "h. fast server: ours, the run after it, nothing new (our start-up)",
}


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    passed: bool


def report(runs: Runs, data: BenchData, stack: BenchStack, options: Options, rss_baseline_mb: float | None) -> str:
    ran = [key for key in ROWS if key in runs[0]]
    nesting = f" rest_api's default nesting made {runs[0]['b'].report['tables']} tables." if "b" in ran else ""
    lines = [
        f"## STAC API -> items: {data.items} items, {len(runs)} run(s)",
        "",
        "| contender | items | wall s | items/s | CPU s / 1k items | peak RSS MB | DuckDB file MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(table_row(label(key, runs, options), [run[key] for run in runs]) for key in ran),
        "",
        "wall s, items/s and CPU s (user + system of the process) per 1,000 items: median (min–max) over the runs; "
        f"peak RSS: the highest of the runs; DuckDB file: after the last run.{nesting}",
        "",
        "### Ratios (items/s of the medians; d = ours into DuckDB)",
        "",
        *(f"- {name}: {value}" for name, value in ratios(runs)),
        "",
        "### Targets",
        "",
        *(f"- {'PASS' if target.passed else 'FAIL'} {target.name}: {target.value}" for target in targets(runs)),
        f"- {rss_growth(runs, rss_baseline_mb, data.items)}",
        "",
        "### Settings",
        "",
        *(f"- {line}" for line in settings(runs, data, stack, options)),
        "",
    ]
    return "\n".join(lines)


def label(key: str, runs: Runs, options: Options) -> str:
    peers = f"limit {options.peer_limit}"
    cap = f", capped at ~{options.rest_api_max_items} items (whole pages)" if options.rest_api_max_items else ""
    if key == "a":
        return f"a. pystac-client `items_as_dicts`, {runs[0]['a'].report['method']} /search, {peers}"
    if key == "b":
        return f"b. dlt rest_api -> DuckDB, /collections/{{id}}/items, {peers}{cap}"
    if key == "c":
        return f"c. rustac `search_to` -> stac-geoparquet per collection, {peers}"
    if key == "e":
        return "e. ours, incremental run after +1% new items -> DuckDB"
    if key in SCENARIO_LABELS:
        return SCENARIO_LABELS[key]
    ours = runs[0][key].report
    settings = f"page_size {ours['page_size']}, concurrency {ours['concurrency']}, package_size {ours['package_size']}"
    return f"d. ours -> {'DuckDB' if key == 'd-duckdb' else 'Postgres'}, {settings}"


def table_row(name: str, measurements: list[Measurement]) -> str:
    items = spread([m.items for m in measurements], "{:.0f}")
    wall = spread([m.wall_s for m in measurements], "{:.1f}")
    rate = spread([m.items_per_s for m in measurements], "{:.0f}")
    cpu = spread([m.cpu_s_per_1000_items for m in measurements], "{:.2f}") if measurements[0].items else ""
    rss = max(m.peak_rss_mb for m in measurements)
    duckdb_mb = measurements[-1].report.get("duckdb_mb")
    duckdb = "" if duckdb_mb is None else f"{duckdb_mb:.0f}"
    return f"| {name} | {items} | {wall} | {rate} | {cpu} | {rss:.0f} | {duckdb} |"


def spread(values: list[float], number: str) -> str:
    """The median, and the range when the runs differ."""
    median = number.format(statistics.median(values))
    low, high = number.format(min(values)), number.format(max(values))
    return median if low == high else f"{median} ({low}–{high})"


def median_of(runs: Runs, key: str, value: Callable[[Measurement], float]) -> float:
    return statistics.median(value(run[key]) for run in runs)


def rate(runs: Runs, key: str) -> float:
    return median_of(runs, key, lambda m: m.items_per_s)


def e_wall_percent(runs: Runs) -> float:
    return 100 * median_of(runs, "e", lambda m: m.wall_s) / median_of(runs, "d-duckdb", lambda m: m.wall_s)


def ratios(runs: Runs) -> list[tuple[str, str]]:
    if "d-duckdb" not in runs[0]:
        return []
    ours = rate(runs, "d-duckdb")
    peers = [(key, name, digits) for key, name, digits in PEERS if key in runs[0]]
    return [
        *((f"d/{key} (ours vs {name})", f"{ours / rate(runs, key):.{digits}f}") for key, name, digits in peers),
        *([("d-postgres/d", f"{rate(runs, 'd-postgres') / ours:.2f}")] if "d-postgres" in runs[0] else []),
        *([("e wall / d wall", f"{e_wall_percent(runs):.0f}%")] if "e" in runs[0] else []),
    ]


PEERS = (("a", "pystac-client", 2), ("b", "rest_api", 1), ("c", "rustac", 2))


def targets(runs: Runs) -> list[Target]:
    """Issue 10's targets: throughput against pystac-client kept, and peak RSS bounded per destination."""
    found = []
    if "d-duckdb" in runs[0] and "a" in runs[0]:
        ratio = rate(runs, "d-duckdb") / rate(runs, "a")
        found.append(
            Target("d/a >= 1.40 (ours vs pystac-client, as before the load packages)", f"{ratio:.2f}", ratio >= 1.4)
        )
    for key, limit in (("d-duckdb", 400), ("d-postgres", 300)):
        if key in runs[0]:
            rss = max(run[key].peak_rss_mb for run in runs)
            found.append(Target(f"peak RSS of {key} <= {limit} MB", f"{rss:.0f} MB", rss <= limit))
    if "e" in runs[0]:
        found.append(Target("e wall <= 5% of d wall", f"{e_wall_percent(runs):.1f}%", e_wall_percent(runs) <= 5))
        found.append(
            Target("e wall <= 3% of d wall (issue 12)", f"{e_wall_percent(runs):.1f}%", e_wall_percent(runs) <= 3)
        )
        found.append(e_read_target(runs))
    if "d-duckdb" in runs[0] and "b" in runs[0]:
        ratio = rate(runs, "d-duckdb") / rate(runs, "b")
        found.append(Target("d/b >= 10 (ours vs rest_api, issue 17)", f"{ratio:.1f}", ratio >= 10))
    return found + shape_targets(runs) + fast_server_targets(runs)


def fast_server_targets(runs: Runs) -> list[Target]:
    """Issue 34's targets against the fast server: ours as fast as pystac-client's download, at most 1.5 times
    its CPU per item, and a run with nothing new under 1 s."""
    if "h-d" not in runs[0]:
        return []
    share = rate(runs, "h-d") / rate(runs, "h-a")
    cpu = median_of(runs, "h-d", per_1000) / median_of(runs, "h-a", per_1000)
    again = median_of(runs, "h-again", lambda m: m.wall_s)
    return [
        Target("h: ours' items/s >= pystac-client's (issue 34)", f"{share:.2f} of pystac-client's", share >= 1),
        Target("h: ours' CPU per item <= 1.5x pystac-client's (issue 34)", f"{cpu:.2f}x", cpu <= 1.5),
        Target("h: a run with nothing new < 1 s (issue 34)", f"{again:.2f} s", again < 1),
    ]


def per_1000(measurement: Measurement) -> float:
    return measurement.cpu_s_per_1000_items


def shape_targets(runs: Runs) -> list[Target]:
    """Issue 12's targets for the catalog shapes of `bench/scenarios.py`."""
    found = []
    if "f" in runs[0]:
        again = median_of(runs, "f-again", lambda m: m.wall_s)
        found.append(Target("f: a run with nothing new <= 2 s (issue 12)", f"{again:.1f} s", again <= 2))
        if "d-duckdb" in runs[0]:
            share = rate(runs, "f") / rate(runs, "d-duckdb")
            value = f"{rate(runs, 'f'):.0f} items/s, {share:.2f} of d's"
            found.append(Target("f: first load >= half of d's items/s (issue 12)", value, share >= 0.5))
    if "g" in runs[0]:
        read = max(run["g-again"].report.get("items_read", float("nan")) for run in runs)
        page = runs[0]["g-again"].report["page_size"]
        value = f"{read:.0f} items read (a page holds {page})"
        found.append(Target("g: a run with nothing new reads at most a page (issue 12)", value, read <= page))
    return found


def e_read_target(runs: Runs) -> Target:
    """Issue 12: an incremental run reads at most 1.2 times the items it loads (the median run's figures)."""
    read = median_of(runs, "e", lambda m: m.report.get("items_read", float("nan")))
    new = median_of(runs, "e", lambda m: m.items)
    value = f"{read:.0f} items read for {new:.0f} new ({read / new:.2f}x)"
    return Target("e reads <= 1.2x the new items (issue 12)", value, read <= 1.2 * new)


def rss_growth(runs: Runs, baseline_mb: float | None, items: int) -> str:
    """The RSS target compares two invocations: 1M items against a 100k baseline (issue 34: at most 1.1 times),
    or fewer against a 10k baseline (issue 10: at most 1.3 times)."""
    if "d-duckdb" not in runs[0]:
        return "(not checked) peak RSS growth: d-duckdb did not run"
    d_rss = max(run["d-duckdb"].peak_rss_mb for run in runs)
    size, items_at_size, against, limit = (
        ("1M", 1_000_000, "100k", 1.1) if items >= 1_000_000 else ("100k", 100_000, "10k", 1.3)
    )
    if baseline_mb is None:
        return (
            f"(not checked) peak RSS of d at {size} / at {against} <= {limit}: pass the {against} run's d peak "
            f"RSS, e.g. `make bench ITEMS={items_at_size} RUNS=1 BENCH_RSS_BASELINE=<MB>`"
        )
    ratio = d_rss / baseline_mb
    verdict = "PASS" if ratio <= limit else "FAIL"
    return f"{verdict} peak RSS of d / baseline {baseline_mb:.0f} MB ({against}) <= {limit}: {ratio:.2f}"


def settings(runs: Runs, data: BenchData, stack: BenchStack, options: Options) -> list[str]:
    workers = "unknown" if stack.workers is None else str(stack.workers)
    started = "reused, already running" if stack.reused else f"started and loaded in {stack.start_s:.1f} s"
    ours = next((runs[0][key] for key in ("d-duckdb", "d-postgres") if key in runs[0]), None)
    page_size = ours.report["page_size"] if ours else "(ours did not run)"
    return [
        f"server: stac-fastapi-pgstac {stack.version} on pgstac, {workers} uvicorn worker(s), "
        f"USE_API_HYDRATE={stack.api_hydrate}, {started}",
        f"items: {data.items} in {len(data.items_by_collection)} collections "
        f"(+{data.new_items} new for e), from {data.root}",
        f"page sizes: ours {page_size} ({'BENCH_PAGE_SIZE' if options.page_size else 'the source default'}), "
        f"peers {options.peer_limit}"
        + (f"; rest_api capped at {options.rest_api_max_items} items" if options.rest_api_max_items else ""),
        *([f"fast server (h): rustac serve {version('rustac')}, in memory"] if "h-d" in runs[0] else []),
        f"contenders: {', '.join(key for key in ROWS if key in runs[0])}",
        f"commit {commit()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def commit() -> str:
    completed = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"
