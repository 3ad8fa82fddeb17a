"""One run of a pipeline at a time: a scheduled run that fires while the last one still runs (cron, a CI
schedule, an Airflow DAG whose runs overlap) must not run beside it, since both would read and write the same
state and tables.

A run holds an exclusive lock (`flock`) on `.<pipeline name>.run.lock` beside the pipeline's working folder while
it runs, from before dlt opens the pipeline, with its PID in the file. The kernel lets go of it when the process
ends, however it ends (`kill -9` too), so no run ever finds a stale lock. A second run waits for it up to
`[main_job] run_lock_wait_s` (0 by default), then ends without doing anything, saying which run holds it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.pipeline import get_dlt_pipelines_dir

RUN_IN_PROGRESS_EXIT = 75
"""The exit code of a run that found another in progress: EX_TEMPFAIL, "try again later"."""
RETRY_EVERY_S = 1.0


@configspec
class RunLockSettings(BaseConfiguration):
    """`[main_job]` in .dlt/config.toml."""

    run_lock_wait_s: float = 0.0
    """How long a run waits for a run of the same pipeline in progress to end, before it ends without loading."""


def run_lock_settings() -> RunLockSettings:
    return resolve_configuration(RunLockSettings(), sections=("main_job",))


class RunInProgress(RuntimeError):
    """Another run of the pipeline holds its run lock."""

    def __init__(self, pipeline_name: str, holder: str) -> None:
        super().__init__(
            f"another run of pipeline {pipeline_name!r} is in progress ({holder}): this run did nothing. A "
            "scheduled run that fires while the last one runs ends here, and the next one goes on where that one "
            "ends; `[main_job] run_lock_wait_s` (MAIN_JOB__RUN_LOCK_WAIT_S) makes a run wait for it instead."
        )


@contextmanager
def only_run(pipeline_name: str, wait_s: float) -> Iterator[None]:
    """Holds the run lock of the pipeline `pipeline_name` for the `with` block, waiting up to `wait_s` for a run
    that holds it (saying so once); raises `RunInProgress` after that. Taken before dlt opens the pipeline, which
    writes its state as it does, on a file beside the pipeline's working folder, which dlt may wipe."""
    path = Path(get_dlt_pipelines_dir()) / f".{pipeline_name}.run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _locked(path, pipeline_name, wait_s)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # lets go of the lock


def _locked(path: Path, pipeline_name: str, wait_s: float) -> int:
    """A descriptor of `path` that holds its lock; a lock on a file that was replaced meanwhile is let go and
    taken again on the new one."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            if time.monotonic() >= deadline:
                raise RunInProgress(pipeline_name, holder) from None
            if not said:
                print(f"Waiting up to {wait_s:.0f} s for the run in progress ({holder}) to end.", file=sys.stderr)
                said = True
            time.sleep(RETRY_EVERY_S)
            continue
        if _same_file(descriptor, path):
            return descriptor
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _holder(descriptor: int) -> str:
    """The PID the holding run wrote into the lock file."""
    pid = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return f"PID {pid}" if pid.isdigit() else "PID unknown"
