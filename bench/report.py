"""The results as one markdown document: the table, the ratios, the targets and the settings."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from bench.catalog import BenchData
from bench.measure import PROJECT_ROOT, Measurement
from bench.runs import CONTENDERS, Options
from bench.stack import BenchStack

Runs = list[dict[str, Measurement]]


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    passed: bool


def report(runs: Runs, data: BenchData, stack: BenchStack, options: Options, rss_baseline_mb: float | None) -> str:
    lines = [
        f"## STAC API -> items: {data.items} items, {len(runs)} run(s)",
        "",
        "| contender | items | wall s | items/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
        *(table_row(label(key, runs, options), [run[key] for run in runs]) for key in CONTENDERS),
        "",
        "wall s and items/s: median (min–max) over the runs; peak RSS: the highest of the runs. "
        f"rest_api's default nesting made {runs[0]['b'].report['tables']} tables.",
        "",
        "### Ratios (items/s of the medians; d = ours into DuckDB)",
        "",
        *(f"- {name}: {value}" for name, value in ratios(runs)),
        "",
        "### Targets",
        "",
        *(f"- {'PASS' if target.passed else 'FAIL'} {target.name}: {target.value}" for target in targets(runs)),
        f"- {rss_growth(runs, rss_baseline_mb)}",
        "",
        "### Settings",
        "",
        *(f"- {line}" for line in settings(runs, data, stack, options)),
        "",
    ]
    return "\n".join(lines)


def label(key: str, runs: Runs, options: Options) -> str:
    page_size = runs[0]["d-duckdb"].report["page_size"]
    concurrency = runs[0]["d-duckdb"].report["concurrency"]
    peers = f"limit {options.peer_limit}"
    cap = f", capped at ~{options.rest_api_max_items} items (whole pages)" if options.rest_api_max_items else ""
    return {
        "a": f"a. pystac-client `items_as_dicts`, {runs[0]['a'].report['method']} /search, {peers}",
        "b": f"b. dlt rest_api -> DuckDB, /collections/{{id}}/items, {peers}{cap}",
        "c": f"c. rustac `search_to` -> stac-geoparquet per collection, {peers}",
        "d-duckdb": f"d. ours -> DuckDB, page_size {page_size}, concurrency {concurrency}",
        "d-postgres": f"d. ours -> Postgres, page_size {page_size}, concurrency {concurrency}",
        "e": "e. ours, incremental run after +1% new items -> DuckDB",
    }[key]


def table_row(name: str, measurements: list[Measurement]) -> str:
    items = spread([m.items for m in measurements], "{:.0f}")
    wall = spread([m.wall_s for m in measurements], "{:.1f}")
    rate = spread([m.items_per_s for m in measurements], "{:.0f}")
    rss = max(m.peak_rss_mb for m in measurements)
    return f"| {name} | {items} | {wall} | {rate} | {rss:.0f} |"


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
    ours = rate(runs, "d-duckdb")
    return [
        ("d/a (ours vs pystac-client)", f"{ours / rate(runs, 'a'):.2f}"),
        ("d/b (ours vs rest_api)", f"{ours / rate(runs, 'b'):.1f}"),
        ("d/c (ours vs rustac)", f"{ours / rate(runs, 'c'):.2f}"),
        ("d-postgres/d", f"{rate(runs, 'd-postgres') / ours:.2f}"),
        ("e wall / d wall", f"{e_wall_percent(runs):.0f}%"),
    ]


def targets(runs: Runs) -> list[Target]:
    ours = rate(runs, "d-duckdb")
    d_rss = max(run["d-duckdb"].peak_rss_mb for run in runs)
    return [
        Target("d/a >= 1.0", f"{ours / rate(runs, 'a'):.2f}", ours >= rate(runs, "a")),
        Target("d/b >= 10", f"{ours / rate(runs, 'b'):.1f}", ours >= 10 * rate(runs, "b")),
        Target("d/c >= 1.0", f"{ours / rate(runs, 'c'):.2f}", ours >= rate(runs, "c")),
        Target("peak RSS of d <= 300 MB", f"{d_rss:.0f} MB", d_rss <= 300),
        Target("e wall <= 5% of d wall", f"{e_wall_percent(runs):.1f}%", e_wall_percent(runs) <= 5),
    ]


def rss_growth(runs: Runs, baseline_mb: float | None) -> str:
    """The RSS target compares two invocations: 100k items against a 10k baseline."""
    d_rss = max(run["d-duckdb"].peak_rss_mb for run in runs)
    if baseline_mb is None:
        return (
            "(not checked) peak RSS of d at 100k / at 10k <= 1.3: pass the 10k run's d peak RSS, "
            "e.g. `make bench ITEMS=100000 RUNS=1 BENCH_RSS_BASELINE=<MB>`"
        )
    ratio = d_rss / baseline_mb
    verdict = "PASS" if ratio <= 1.3 else "FAIL"
    return f"{verdict} peak RSS of d / baseline {baseline_mb:.0f} MB <= 1.3: {ratio:.2f}"


def settings(runs: Runs, data: BenchData, stack: BenchStack, options: Options) -> list[str]:
    workers = "unknown" if stack.workers is None else str(stack.workers)
    started = "reused, already running" if stack.reused else f"started and loaded in {stack.start_s:.1f} s"
    page_size = runs[0]["d-duckdb"].report["page_size"]
    return [
        f"server: stac-fastapi-pgstac {stack.version} on pgstac, {workers} uvicorn worker(s), "
        f"USE_API_HYDRATE={stack.api_hydrate}, {started}",
        f"items: {data.items} in {len(data.items_by_collection)} collections "
        f"(+{data.new_items} new for e), from {data.root}",
        f"page sizes: ours {page_size} ({'BENCH_PAGE_SIZE' if options.page_size else 'the source default'}), "
        f"peers {options.peer_limit}"
        + (f"; rest_api capped at {options.rest_api_max_items} items" if options.rest_api_max_items else ""),
        f"commit {commit()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def commit() -> str:
    completed = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"
