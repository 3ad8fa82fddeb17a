"""`make bench-scale-out`: a backfill of the bench's catalog split into time chunks that Airflow runs as parallel
tasks, against one process doing the same backfill. Into Postgres, on the bench's pgstac stack (`bench/stack.py`).

    python -m bench.scale_out [--items 100000] [--chunks 4] [--server pgstac|rustac] [--port 8090] [--workers 4]
                              [--keep-stack]

The backfill is every item of the catalog: acquisition time 2015 to 2023 (`bench/catalog.py`). One after the other:
- the main job, one process: `terrabyte_pipeline.py --destination postgres --since <start> --until <end>`;
- the DAG `terrabyte_stac_backfill` with 1 chunk, then with `--chunks` chunks (the first alone, then the rest at
  once), run by Airflow's scheduler with LocalExecutor, each task a Python process of its own.

Each into a fresh database, which must then hold every item once. Wall time: the main job's process, the DAG
run's start to end (Airflow's metadata database; the scheduler's own start-up left out) and each task's. Peak
RSS: the main job's process, and each chunk task's process (the line its task writes to its Airflow log). The
table goes to stdout and to bench/results/scale_out.md; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import psycopg2

from bench.catalog import BASE_END, BASE_START, bench_data, rfc3339
from bench.fast_server import fast_server
from bench.measure import measure_main_job
from bench.runs import fresh_folder
from bench.stack import BenchStack, bench_stack, fresh_destination, log
from stack.airflow import DagRun, LocalAirflow
from stack.processes import make_workdir

RESULTS = Path(__file__).resolve().parent / "results" / "scale_out.md"
SERVERS = {"pgstac": "stac-fastapi-pgstac", "rustac": "`rustac serve`"}
DAG_ID = "terrabyte_stac_backfill"
RUN_ENDS_WITHIN_S = 4 * 3600.0
CHUNK_LOG_LINE = re.compile(r"Backfill chunk (\d+) \[.*?\): (\d+) items in (\d+) load packages, peak RSS (\d+) MB")


class Task(NamedTuple):
    name: str
    wall_s: float
    peak_rss_mb: int | None
    items: int | None


class Backfill(NamedTuple):
    label: str
    wall_s: float
    tasks: list[Task]
    rows: int
    distinct: int
    busy: float = float("nan")
    """The share of the machine's CPU time that was busy (any process: server, database, tasks) meanwhile."""


def cpu_times() -> tuple[int, int]:
    """The machine's CPU time so far, busy and in all, in clock ticks (/proc/stat)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and waiting for I/O
    return sum(ticks) - idle, sum(ticks)


def with_cpu_busy(measured: Callable[[], Backfill]) -> Backfill:
    busy_before, all_before = cpu_times()
    backfill = measured()
    busy_after, all_after = cpu_times()
    return backfill._replace(busy=(busy_after - busy_before) / max(1, all_after - all_before))


def main_job_backfill(stack: BenchStack, api_url: str, workdir: Path) -> Backfill:
    """The main job over the whole range in one process, from the API at `api_url`."""
    url = fresh_destination(stack.cluster)
    env = {"DESTINATION__POSTGRES__CREDENTIALS": url, "BENCH_POSTGRES_URL": url}
    window = ["--since", rfc3339(BASE_START), "--until", rfc3339(BASE_END)]
    arguments = ["--url", api_url, "--destination", "postgres", "--progress", "none", *window]
    measured = measure_main_job("main job", arguments, fresh_folder(workdir / "main-job"), env)
    rows, distinct = items_in(url)
    task = Task("the process", measured.wall_s, round(measured.peak_rss_mb), measured.items)
    return Backfill("main job, one process", measured.wall_s, [task], rows, distinct)


def dag_backfill(stack: BenchStack, api_url: str, workdir: Path, chunks: int) -> Backfill:
    """The DAG over the whole range in `chunks` chunks, from the API at `api_url`, with Airflow's metadata in a
    fresh database."""
    url = fresh_destination(stack.cluster)
    metadata = fresh_destination(stack.cluster, f"airflow_scale_out_{chunks}")
    settings = {"SOURCES__STAC__URL": api_url, "AIRFLOW_DAG__DESTINATION": "postgres",
                "DESTINATION__POSTGRES__CREDENTIALS": url}  # fmt: skip
    airflow = LocalAirflow(fresh_folder(workdir / f"airflow-{chunks}"), settings, metadata)
    airflow.prepared().triggered(DAG_ID, {"start": rfc3339(BASE_START), "end": rfc3339(BASE_END), "chunks": chunks})
    run = airflow.scheduled_to_the_end(DAG_ID, RUN_ENDS_WITHIN_S)
    if run.state != "success":
        raise RuntimeError(f"the backfill DAG run ended {run.state}: {run.task_states}; see {airflow.log}")
    rows, distinct = items_in(url)
    label = f"Airflow DAG, {chunks} chunk{'s' if chunks > 1 else ''}"
    return Backfill(label, seconds(run.start, run.end), chunk_tasks(run, airflow), rows, distinct)


def chunk_tasks(run: DagRun, airflow: LocalAirflow) -> list[Task]:
    """Each chunk task's wall time, with the items and peak RSS its log line gives."""
    logged = {int(found[1]): found for found in map(CHUNK_LOG_LINE.search, task_log_lines(airflow)) if found}
    tasks = []
    for task_id, map_index, state, start, end in run.tasks:
        if not task_id.endswith("chunk") or state != "success":  # a mapped task of no chunks is skipped
            continue
        index = 0 if map_index < 0 else map_index + 1
        found = logged.get(index)
        peak, items = (int(found[4]), int(found[2])) if found else (None, None)
        tasks.append(Task(f"chunk {index}", seconds(start, end), peak, items))
    return sorted(tasks)


def task_log_lines(airflow: LocalAirflow) -> list[str]:
    logs = Path(airflow.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}"
    return [line for path in sorted(logs.rglob("*.log")) for line in path.read_text(errors="replace").splitlines()]


def seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start and end else float("nan")


def items_in(url: str) -> tuple[int, int]:
    """Rows of the destination's `items` (in whichever dataset, not a staging one), and how many distinct
    `(collection, id)`."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables"
            " WHERE table_name = 'items' AND table_schema NOT LIKE '%\\_staging%'"
        )
        (schema,) = cursor.fetchone()
        cursor.execute(f'SELECT count(*), count(DISTINCT (collection, id)) FROM "{schema}".items')
        rows, distinct = cursor.fetchone()
    return rows, distinct


def table(backfills: list[Backfill], items: int, server: str) -> str:
    lines = [
        f"Backfill of {items:,} items (acquired 2015-2023) into Postgres, from {SERVERS[server]} on this machine",
        "",
        "| run | wall s | items/s | CPU busy | tasks: wall s, peak RSS MB, items | rows (distinct) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for backfill in backfills:
        tasks = "; ".join(
            f"{task.name}: {task.wall_s:.1f} s, {task.peak_rss_mb if task.peak_rss_mb is not None else '?'} MB, "
            f"{task.items if task.items is not None else '?'}"
            for task in backfill.tasks
        )
        rate = backfill.rows / backfill.wall_s if backfill.wall_s else float("nan")
        rows = f"{backfill.rows} ({backfill.distinct})"
        busy = f"{backfill.busy:.0%} of {os.cpu_count()} cores"
        lines.append(f"| {backfill.label} | {backfill.wall_s:.1f} | {rate:,.0f} | {busy} | {tasks} | {rows} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers of stac-fastapi-pgstac")
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--server", choices=("pgstac", "rustac"), default="pgstac",
                        help="the API read: the stack's pgstac, or `rustac serve` with the same items (the stack's"
                             " cluster still holds the destination)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    data = bench_data(args.items)
    workdir = make_workdir("bench-scale-out-")
    with (
        bench_stack(data, args.port, args.workers, args.keep_stack) as stack,
        fast_server(data, workdir) if args.server == "rustac" else nullcontext(stack.url) as api_url,
    ):
        backfills = []
        for measured in (
            lambda: main_job_backfill(stack, api_url, workdir),
            lambda: dag_backfill(stack, api_url, workdir, 1),
            lambda: dag_backfill(stack, api_url, workdir, args.chunks),
        ):
            backfill = with_cpu_busy(measured)
            log(f"{backfill.label}: {backfill.rows} rows in {backfill.wall_s:.1f} s; {backfill.tasks}")
            backfills.append(backfill)
    report = table(backfills, data.items, args.server)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    wrong = [backfill.label for backfill in backfills if backfill.rows != data.items or backfill.distinct != data.items]
    if wrong:
        log(f"not every item exactly once: {', '.join(wrong)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
