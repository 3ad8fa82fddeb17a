"""Running one contender in a process of its own, timed from outside, with its own peak RSS.

Wall seconds are taken around the whole process (interpreter start, imports, work, exit), so every
contender pays its own start-up. Peak RSS is the process's `ru_maxrss` from `os.wait4`, which on
Linux counts in KiB and covers that process only (plus any children it waited for).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ContenderFailed(RuntimeError):
    """A contender's process ended with an error."""


@dataclass(frozen=True)
class Measurement:
    contender: str
    """The row label, e.g. `d. ours -> DuckDB`."""
    items: int
    """Items the contender itself counted (for ours: rows loaded by this run)."""
    wall_s: float
    peak_rss_mb: float
    report: dict[str, Any]
    """Everything the contender's process reported."""

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s


def measure(label: str, arguments: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> Measurement:
    """Runs `python -m bench.contenders ARGUMENTS` from the project root (where `.dlt/` is) and measures it.

    Its output goes to our stderr, so that stdout carries only the results table.
    """
    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir, delete=False) as result:
        result_file = Path(result.name)
    command = [sys.executable, "-m", "bench.contenders", *arguments, "--workdir", str(workdir)]
    command += ["--result", str(result_file)]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, stdout=sys.stderr)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    wall_s = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise ContenderFailed(f"{label} failed with exit status {process.returncode}; its output is above")
    report = json.loads(result_file.read_text())
    result_file.unlink()
    items = int(report.get("loaded", report["items"]))
    return Measurement(label, items, wall_s, usage.ru_maxrss / 1024, report)
