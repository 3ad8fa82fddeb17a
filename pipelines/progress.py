"""The main job's progress, over the whole run and not one load package at a time as dlt's collectors count it.

A dlt collector (`--progress`): dlt tells it each table's new rows as they are extracted, and the source tells it
how many items its searches match (`numberMatched`, `dlt_stac.reading.reading`), so that it shows items loaded of the
total, the rate and the time left, and where the collections it reads stand, each of its own total. On a
terminal one line, redrawn in place; elsewhere (cron, CI, Airflow's logs) a line per load package loaded, and
one a minute while a package takes longer.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from dlt.common.runtime.collector import Collector, NullCollector

EXTRACT = "Extract"
LOAD = "Load"
NOT_ITEMS = ("Resources", "collections")
"""Counters of the extract step that are not items read (dlt's own tables start with `_`)."""
REDRAW_S = 0.25
LINE_EVERY_S = 60.0


class RunProgress(Collector):
    """Items extracted over every package of a run, of those the searches match."""

    def __init__(self, stream: TextIO, redraw: bool) -> None:
        self.stream = stream
        self.redraw = redraw
        """Redraw one line in place (a terminal); else a line per package and per minute."""
        self.step = ""
        self.started = time.monotonic()
        self.items = 0
        self.expected = 0
        self.packages = 0
        self.note = ""
        """Where the collections of the last page read stand, as the source says (`naip 600 of 1,000`)."""
        self._shown_at = self.started
        self._shown: str = ""

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        if not self.step.startswith(EXTRACT) or name in NOT_ITEMS or name.startswith("_"):
            return
        self.note = message or self.note
        self.items += inc
        self.expected += inc_total or 0
        now = time.monotonic()
        if not inc:
            return
        if self.redraw and now - self._shown_at >= REDRAW_S:
            self._show(f"\r{self.status()}", now)
        elif not self.redraw and now - self._shown_at >= LINE_EVERY_S:
            self._show(f"{self.status()}\n", now)

    def status(self) -> str:
        """`12,345 of 100,000 items (12%), 850 items/s, 1:46 left (naip 600 of 1,000)`; without a total, the items
        and the rate; the note of the collections last read in brackets."""
        note = f" ({self.note})" if self.note else ""
        return self._overall() + note

    def _overall(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.items / elapsed
        done = f"{self.items:,} items"
        if self.expected >= self.items and self.expected:
            done = f"{self.items:,} of {self.expected:,} items ({100 * self.items // self.expected}%)"
            left = (self.expected - self.items) / rate if rate else None
            return f"{done}, {rate:,.0f} items/s" + (f", {_duration(left)} left" if left is not None else "")
        return f"{done}, {rate:,.0f} items/s"

    def _show(self, text: str, now: float) -> None:
        self.stream.write(text.ljust(len(self._shown)) if self.redraw else text)
        self.stream.flush()
        self._shown, self._shown_at = text, now

    def _start(self, step: str) -> None:
        self.step = step

    def _stop(self) -> None:
        if self.step.startswith(LOAD):
            self.packages += 1
            if not self.redraw:
                self._show(f"Load package {self.packages} loaded: {self.status()}\n", time.monotonic())
        self.step = ""

    def close(self) -> None:
        """Ends the redrawn line with where the run got, before the summary."""
        if self.redraw and self._shown:
            self._show(f"\r{self.status()}", time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


PROGRESS_CHOICES = ("auto", "bar", "lines", "none")


def run_progress(choice: str, stream: TextIO = sys.stderr) -> Any:
    """The collector `--progress` asks for: `bar` (one line redrawn), `lines`, `none`, or `auto` (`bar` on a
    terminal, else `lines`)."""
    if choice == "none":
        return NullCollector()
    redraw = choice == "bar" or (choice == "auto" and stream.isatty())
    return RunProgress(stream, redraw)
