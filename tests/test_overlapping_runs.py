"""Two runs of the main job on the same pipeline at once, as when a schedule fires while the last run still runs:
the second ends at once, without loading, with exit code 75 and a message that names the run in progress; the
first ends as if alone, and the tables hold every item once."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from stack import CatalogFolder, RustacServer
from stack.fault_proxy import FaultProxy, Faults
from tests.test_main_pipeline import destination_environment, run_main_job, start_main_job, summary_line

COLLECTIONS = "naip,joplin"
FIRST_REQUEST_WITHIN_S = 120.0


def wait_for_first_request(faults: Faults) -> None:
    """Returns once the proxy has a request of the first run: by then it holds the pipeline's run lock."""
    deadline = time.monotonic() + FIRST_REQUEST_WITHIN_S
    while not faults.requests:
        assert time.monotonic() < deadline, "the first run sent no request"
        time.sleep(0.05)


def first_line_of(process: subprocess.Popen[str], start: str) -> str:
    """The first line of the process's stderr that begins with `start` ("" where it ends without one)."""
    assert process.stderr is not None
    return next((line for line in process.stderr if line.startswith(start)), "")


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_run_that_finds_another_in_progress_ends_without_loading_and_the_tables_end_exact(
    destination: str,
    rustac_server: RustacServer,
    sample_catalog: CatalogFolder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    env = destination_environment(destination, request)
    arguments = ("--collections", COLLECTIONS, "--destination", destination, "--progress", "none")
    faults = Faults(held=threading.Event())
    with FaultProxy(rustac_server.url, faults) as proxy:
        first = start_main_job(tmp_path, "--url", proxy.url, *arguments, env=env)
        try:
            wait_for_first_request(faults)
            second = run_main_job(tmp_path, "--url", rustac_server.url, *arguments, env=env)
        finally:
            faults.held.set()
            first_out, first_err = first.communicate(timeout=300)

    assert second.returncode == 75, second.stderr
    assert second.stderr.splitlines() == [
        f"error: another run of pipeline '{'terrabyte' if destination == 'duckdb' else 'terrabyte_postgres'}' is "
        f"in progress (PID {first.pid}): this run did nothing. A scheduled run that fires while the last one runs "
        "ends here, and the next one goes on where that one ends; `[main_job] run_lock_wait_s` "
        "(MAIN_JOB__RUN_LOCK_WAIT_S) makes a run wait for it instead."
    ]
    assert second.stdout == ""
    assert first.returncode == 0, first_err
    served = sample_catalog.item_ids_by_collection()
    items = sum(len(served[collection]) for collection in COLLECTIONS.split(","))
    assert f"Rows loaded this run: collections 2, items {items} (" in first_out
    again = run_main_job(tmp_path, "--url", rustac_server.url, *arguments, env=env)
    assert again.returncode == 0, again.stderr
    assert summary_line(again) == "Rows loaded this run: no rows (0 load packages)"
    for collection in COLLECTIONS.split(","):
        assert f"{collection:<32} {len(served[collection]):>8}  " in again.stdout


def test_a_run_waits_for_the_run_in_progress_where_it_is_told_to(rustac_server: RustacServer, tmp_path: Path) -> None:
    """With `run_lock_wait_s`, the second run waits for the first, then loads what is left: nothing."""
    arguments = ("--collections", COLLECTIONS, "--progress", "none")
    faults = Faults(held=threading.Event())
    with FaultProxy(rustac_server.url, faults) as proxy:
        first = start_main_job(tmp_path, "--url", proxy.url, *arguments)
        try:
            wait_for_first_request(faults)
            second = start_main_job(
                tmp_path, "--url", rustac_server.url, *arguments, env={"MAIN_JOB__RUN_LOCK_WAIT_S": "300"}
            )
            waiting = first_line_of(second, "Waiting")
        finally:
            faults.held.set()
            first.communicate(timeout=300)
        second_out, second_err = second.communicate(timeout=300)

    assert waiting == f"Waiting up to 300 s for the run in progress (PID {first.pid}) to end.\n"
    assert first.returncode == 0
    assert second.returncode == 0, second_err
    assert "Rows loaded this run: no rows (0 load packages)" in second_out
