"""When another process holds the main job's DuckDB file: wait for it a bounded time, then say who holds it.

DuckDB lets one process write a database file, and a process that opens it, even read-only, keeps writers out
while it has it open: a notebook, the DuckDB CLI or the dashboard left open on `terrabyte.duckdb` makes a load
fail with an `IO Error: Could not set lock on file`, which dlt reports as a connection problem ("check your
credentials", "your internet connection may be down"). `[main_job] duckdb_lock_wait_s` in .dlt/config.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

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
        return f"{self.path} (held by PID {self.pid}: {self.command_line()})"

    def command_line(self) -> str:
        """The holder's command line where this machine shows it, else its program."""
        try:
            arguments = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return self.program
        shown = " ".join(argument.decode(errors="replace") for argument in arguments if argument)
        return (shown[:500] + ("..." if len(shown) > 500 else "")) or self.program

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
