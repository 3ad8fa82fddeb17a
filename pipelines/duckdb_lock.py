"""When another process holds the main job's DuckDB file: wait for it a bounded time, then say who holds it.

DuckDB lets one process write a database file, and a process that opens it, even read-only, keeps writers out
while it has it open: a notebook, the DuckDB CLI or the dashboard left open on `terrabyte.duckdb` makes a load
fail with an `IO Error: Could not set lock on file`, which dlt reports as a connection problem ("check your
credentials", "your internet connection may be down"). `[main_job] duckdb_lock_wait_s` in .dlt/config.toml.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import dlt
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.destinations.exceptions import DestinationConnectionError

LOCK_CONFLICT = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)'
)


@configspec
class LockSettings(BaseConfiguration):
    """`[main_job]` in .dlt/config.toml."""

    duckdb_lock_wait_s: float = 60.0
    """How long a run waits for another process to let go of the DuckDB file before it gives up."""


def lock_settings() -> LockSettings:
    return resolve_configuration(LockSettings(), sections=("main_job",))


@dataclass(frozen=True)
class HeldFile:
    """A DuckDB file that another process holds open."""

    path: str
    pid: int
    program: str

    def __str__(self) -> str:
        """The file and its holder's PID and program (not its command line, which may carry secrets)."""
        return f"{self.path} (held by PID {self.pid}, {self.program})"

    def advice(self) -> str:
        return (
            f"The DuckDB file {self} is open in another process, which keeps this run from writing it: a DuckDB "
            "file has one writer, and a process that has it open, even read-only, keeps writers out. Close that "
            "process (a notebook, the DuckDB CLI, the dashboard), or open the file only between runs, then run again."
        )


def held_file_of(error: BaseException) -> HeldFile | None:
    """The file another process holds, where `error` (or an error that caused it) is DuckDB's lock conflict."""
    cause: BaseException | None = error
    while cause is not None:
        if found := LOCK_CONFLICT.search(str(cause)):
            return HeldFile(found["path"], int(found["pid"]), found["program"])
        cause = cause.__cause__ or cause.__context__
    return None


def wait_for_the_duckdb_file(pipeline: dlt.Pipeline, wait_s: float) -> None:
    """Returns once this process can open the pipeline's DuckDB file, waiting up to `wait_s` for another process to
    let go of it (saying so); raises the lock conflict after that. Before a run, so that the run itself starts
    once and a `--full-refresh` is applied once; a holder that comes later ends the run with `HeldFile.advice`."""
    if pipeline.destination.destination_name != "duckdb":
        return
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            with pipeline.sql_client():
                return
        except DestinationConnectionError as error:
            held = held_file_of(error)
            if held is None or time.monotonic() >= deadline:
                raise
            if not said:
                print(f"Waiting up to {wait_s:.0f} s for the DuckDB file {held}", flush=True)
                said = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
