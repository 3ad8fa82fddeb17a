"""Running one contender in a process of its own, timed from outside, with its own peak RSS.

Wall seconds are taken around the whole process (interpreter start, imports, work, exit), so every
contender pays its own start-up. CPU seconds (user + system) and peak RSS (`ru_maxrss`, in KiB on Linux)
come from `os.wait4` and cover that process only (plus any children it waited for).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.contenders import MAIN_JOB_PIPELINE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = PROJECT_ROOT / "pipelines" / "terrabyte_pipeline.py"


class ContenderFailed(RuntimeError):
    """A contender's process ended with an error."""


@dataclass(frozen=True)
class Measurement:
    contender: str
    """The row label, e.g. `d. ours -> DuckDB`."""
    items: int
    """Items the contender itself counted (for ours: rows this run added to `items`)."""
    wall_s: float
    cpu_s: float
    """User and system CPU seconds of the contender's process (and the children it waited for)."""
    peak_rss_mb: float
    report: dict[str, Any]
    """What the contender's process reported (for ours: the destination counted afterwards)."""

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s

    @property
    def cpu_s_per_1000_items(self) -> float:
        return 1000 * self.cpu_s / self.items if self.items else float("nan")


@dataclass(frozen=True)
class ProcessUsage:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def run_measured(
    label: str, command: list[str], cwd: Path, env: Mapping[str, str] | None = None, output: Path | None = None
) -> ProcessUsage:
    """Runs `command` with our Python and measures it. Its output goes to our stderr, so that stdout carries only
    the results table; with `output`, into that file first (for the caller to read), then to our stderr."""
    started = time.monotonic()
    with open(output, "w") if output else nullcontext(sys.stderr) as stdout:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=cwd, env={**os.environ, **(env or {})}, stdout=stdout
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
    wall_s = time.monotonic() - started
    if output:
        sys.stderr.write(output.read_text())
    if (exit_code := os.waitstatus_to_exitcode(status)) != 0:
        raise ContenderFailed(f"{label} failed with exit status {exit_code}; its output is above")
    return ProcessUsage(wall_s, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def contender_report(
    label: str, arguments: list[str], workdir: Path, env: Mapping[str, str] | None = None
) -> tuple[ProcessUsage, dict[str, Any]]:
    """Runs `python -m bench.contenders ARGUMENTS` from the project root (where `.dlt/` is), and what it reported."""
    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir, delete=False) as result:
        result_file = Path(result.name)
    command = ["-m", "bench.contenders", *arguments, "--workdir", str(workdir), "--result", str(result_file)]
    usage = run_measured(label, command, PROJECT_ROOT, env)
    report = json.loads(result_file.read_text())
    result_file.unlink()
    return usage, report


def measure(label: str, arguments: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> Measurement:
    """A peer: `python -m bench.contenders ARGUMENTS`, which counts the items it read. dlt's settings are its
    defaults: the project's `.dlt/config.toml` is ours, so the peer's dlt looks for one in `workdir`."""
    usage, report = contender_report(label, arguments, workdir, {**(env or {}), "DLT_PROJECT_DIR": str(workdir)})
    return Measurement(label, int(report["items"]), usage.wall_s, usage.cpu_s, usage.peak_rss_mb, report)


def measure_main_job(
    label: str, arguments: list[str], workdir: Path, env: Mapping[str, str], items_before: int = 0
) -> Measurement:
    """Ours, as a user runs it: the main job with the project's `.dlt/config.toml`, its state and DuckDB file in
    `workdir`; then, in a process that is not measured, what its destination holds."""
    job_env = {**env, "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(workdir / "dlt")}
    output = workdir / "main-job.out"
    named = ["--pipeline-name", MAIN_JOB_PIPELINE]  # the one `count` attaches, into any destination
    usage = run_measured(label, [str(MAIN_JOB), *named, *arguments], workdir, job_env, output)
    destination = arguments[arguments.index("--destination") + 1]
    _, counts = contender_report(label, ["count", "--destination", destination], workdir, job_env)
    report = {**counts, **read_from_api(output.read_text())}
    return Measurement(label, int(counts["items"]) - items_before, usage.wall_s, usage.cpu_s, usage.peak_rss_mb, report)


def read_from_api(summary: str) -> dict[str, int]:
    """`items_read` and `pages_read` from the main job's summary line `Read from the API: N items in M pages`."""
    found = re.search(r"^Read from the API: (\d+) items in (\d+) pages?$", summary, re.MULTILINE)
    return {"items_read": int(found[1]), "pages_read": int(found[2])} if found else {}
