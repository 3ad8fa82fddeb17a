"""`make bench`: how fast our source loads a STAC API's items, against pystac-client, dlt's rest_api and rustac.

    python -m bench [--items 10000] [--runs 3] [--port 8090] [--workers 4] [--page-size N] [--peer-limit 1000]
                    [--rest-api-max-items N] [--only d-duckdb,...] [--keep-stack] [--rss-baseline MB]

Every option also reads a BENCH_* environment variable (BENCH_PORT, BENCH_WORKERS, ...). The results
table goes to stdout and to bench/results/latest.md; progress goes to stderr. The exit status is 1
only when a contender crashed or counted the wrong items; missed targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from bench.catalog import bench_data
from bench.fast_server import fast_server, fast_server_run
from bench.measure import ContenderFailed
from bench.report import report
from bench.runs import CONTENDERS, Options, one_run, ours_env, verification_errors
from bench.scenarios import SCENARIOS, shape_runs
from bench.stack import bench_stack, drop_destination, log
from stack.processes import make_workdir

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def optional_int(value: str | None) -> int | None:
    return int(value) if value else None


def contender_keys(value: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    unknown = set(keys) - set(CONTENDERS)
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    return keys


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000, help="items in the server (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of every contender (default 3)")
    parser.add_argument("--port", type=int, default=int(env("BENCH_PORT", "8090")), help="the stack's port")
    parser.add_argument(
        "--workers", type=int, default=int(env("BENCH_WORKERS", "4")), help="uvicorn workers of a new stack"
    )
    parser.add_argument(
        "--page-size", type=int, default=optional_int(env("BENCH_PAGE_SIZE")), help="our page_size (default: ours)"
    )
    parser.add_argument(
        "--peer-limit", type=int, default=int(env("BENCH_PEER_LIMIT", "1000")), help="the peers' page size"
    )
    parser.add_argument(
        "--rest-api-max-items",
        type=int,
        default=optional_int(env("BENCH_REST_API_MAX_ITEMS")),
        help="stop rest_api after about this many items (default: all)",
    )
    parser.add_argument(
        "--only",
        type=contender_keys,
        default=contender_keys(env("BENCH_ONLY", ",".join(CONTENDERS))),
        help=f"the contenders to run, comma separated (default: all of {','.join(CONTENDERS)}; e needs d-duckdb)",
    )
    parser.add_argument(
        "--keep-stack",
        action="store_true",
        default=bool(env("BENCH_KEEP_STACK")),
        help="leave a stack this run started running, for the next run to reuse",
    )
    parser.add_argument(
        "--rss-baseline",
        type=float,
        default=float(env("BENCH_RSS_BASELINE", "0")) or None,
        help="peak RSS MB of d in a 10k run (a 100k run for 1M items), to check the growth target",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` stops the stack too, like Ctrl-C
    options = Options(args.peer_limit, args.page_size, args.rest_api_max_items, args.only)
    started = time.monotonic()
    data = bench_data(args.items)
    log(f"{data.items} items (+{data.new_items} new) in {data.root}, ready in {time.monotonic() - started:.1f} s")
    workdir = make_workdir("stac-dlt-bench-")
    try:
        with bench_stack(data, args.port, args.workers, args.keep_stack) as stack:
            runs = []
            for run in range(args.runs):
                log(f"run {run + 1} of {args.runs}")
                runs.append(one_run(stack, data, options, workdir))
            drop_destination(stack.cluster)
            for key in (key for key in SCENARIOS if key in options.only):  # after a, b and c: they read everything
                for measured, shape_measured in zip(
                    runs, shape_runs(stack, key, args.runs, workdir, ours_env(options)), strict=True
                ):
                    measured.update(shape_measured)
        if "h" in options.only:  # alone on the cores: the stack's server stands idle meanwhile
            with fast_server(data, workdir) as url:
                for run, measured in enumerate(runs):
                    measured.update(fast_server_run(url, run, args.peer_limit, workdir, ours_env(options)))
    except ContenderFailed as failure:
        log(f"error: {failure}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(runs, data, stack, options, args.rss_baseline)
    errors = [error for results in runs for error in verification_errors(results, data, options)]
    text += "".join(f"\n**VERIFICATION FAILED**: {error}\n" for error in errors)
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
