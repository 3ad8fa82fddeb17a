"""The main job, run as a user runs it: flags, progress, load info and the per-collection summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dlt
import pytest

from stack import PgstacServer, RustacServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PIPELINE = PROJECT_ROOT / "pipelines" / "terrabyte_pipeline.py"


def main_job_environment(workdir: Path, env: dict[str, str] | None) -> dict[str, str]:
    """The project's `.dlt/config.toml` (or that of the project `env` names); the state in `workdir`."""
    return {**os.environ, "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(workdir / "dlt"), **(env or {})}


def destination_environment(destination: str, request: pytest.FixtureRequest) -> dict[str, str] | None:
    """What a main-job process needs to load into `destination`: a database of the test cluster for Postgres."""
    if destination != "postgres":
        return None
    return {"DESTINATION__POSTGRES__CREDENTIALS": request.getfixturevalue("postgres_database")}


def run_main_job(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The main job as a user runs it, in `workdir` (where it writes its DuckDB file)."""
    return subprocess.run(
        [sys.executable, str(PIPELINE), *args], cwd=workdir, env=main_job_environment(workdir, env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def start_main_job(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The main job started as `run_main_job` runs it, its output read as it goes."""
    return subprocess.Popen(
        [sys.executable, str(PIPELINE), *args], cwd=workdir, env=main_job_environment(workdir, env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def summary_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Rows loaded this run: ")]
    return line


def read_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Read from the API: ")]
    return line


def test_main_job_loads_and_summarises_per_collection(rustac_server: RustacServer, tmp_path: Path) -> None:
    first = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin", "3dep-lidar-dsm")

    assert first.returncode == 0, first.stderr
    assert summary_line(first) == "Rows loaded this run: collections 3, items 1034 (1 load package)"
    assert read_line(first) == "Read from the API: 1034 items in 6 pages"
    assert "Tables in terrabyte_stac (duckdb): collections, items" in first.stdout.splitlines()
    summary = [line.split()[:2] for line in first.stdout.splitlines() if line.startswith(("naip ", "joplin ", "3dep"))]
    assert summary == [["3dep-lidar-dsm", "4"], ["joplin", "30"], ["naip", "1000"]]
    naip_line = f"{'naip':<32} {1000:>8}  2011-07-31 00:00:00+00:00 .. 2023-10-02 16:00:00+00:00"
    assert naip_line in first.stdout.splitlines()
    assert (tmp_path / "terrabyte.duckdb").exists()
    loaded = dlt.attach("terrabyte", pipelines_dir=str(tmp_path / "dlt" / "pipelines"))
    items = loaded.dataset().items.df()  # dlt's DataFrame of a table, as a notebook reads it
    assert len(items) == 1034 and sorted(items["collection"].unique()) == ["3dep-lidar-dsm", "joplin", "naip"]
    assert first.stdout.splitlines()[-1] == (
        "All collections load by `datetime` (3dep-lidar-dsm, joplin, naip): an incremental run sees an edit, or an "
        "item added with a datetime before the collection's cursor, only where the item carries `updated` and the "
        "API filters on it: a --reconcile run loads the others."
    )

    second = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin,3dep-lidar-dsm")
    assert second.returncode == 0, second.stderr
    assert summary_line(second) == "Rows loaded this run: no rows (0 load packages)", "the collections did not change"
    assert read_line(second) == "Read from the API: 37 items in 3 pages", "the items at each cursor: 3 + 30 + 4"

    refreshed = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip", "--full-refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert summary_line(refreshed) == "Rows loaded this run: collections 1, items 1000 (1 load package)"


def test_main_job_loads_in_packages_of_package_size(rustac_server: RustacServer, tmp_path: Path) -> None:
    result = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip", "--package-size", "300")

    assert result.returncode == 0, result.stderr
    packages = [line for line in result.stdout.splitlines() if line.startswith("Loaded load package ")]
    assert [line.split(": ", 1)[1] for line in packages] == ["collections 1, items 500", "items 500"]
    assert summary_line(result) == "Rows loaded this run: collections 1, items 1000 (2 load packages)"


def test_main_job_reports_a_bad_collection_without_a_traceback(rustac_server: RustacServer, tmp_path: Path) -> None:
    result = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "nope")

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: Unknown collection(s) nope at {rustac_server.url}. The API has: 3dep-")
    assert "Traceback" not in result.stderr


HOLD_DUCKDB_FILE = "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); print('open', flush=True); sys.stdin.readline()"  # noqa: E501
"""A process that reads the DuckDB file, as a notebook or the DuckDB CLI does, until it is told to let go (a line on
its standard input)."""


def holding_the_file(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DUCKDB_FILE, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    return holder


def test_a_run_waits_for_a_process_that_holds_the_duckdb_file_and_then_names_it(
    rustac_server: RustacServer, tmp_path: Path
) -> None:
    assert run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "joplin").returncode == 0
    database = tmp_path / "terrabyte.duckdb"

    holder = holding_the_file(database)
    try:
        refused = run_main_job(
            tmp_path, "--url", rustac_server.url, "--collections", "naip", env={"MAIN_JOB__DUCKDB_LOCK_WAIT_S": "1"}
        )
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"error: The DuckDB file {database} (held by PID {holder.pid}, {os.path.realpath(sys.executable)}) is open "
        "in another process, which keeps this run from writing it: a DuckDB file has one writer, and a process that "
        "has it open, even read-only, keeps writers out. Close that process (a notebook, the DuckDB CLI, the "
        "dashboard), or open the file only between runs, then run again."
    )
    assert HOLD_DUCKDB_FILE not in refused.stderr, "not its command line, which may carry secrets"
    assert "credentials" not in refused.stderr and "internet" not in refused.stderr

    holder = holding_the_file(database)
    run = start_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip")
    assert run.stdout is not None and holder.stdin is not None
    waiting = run.stdout.readline()
    holder.communicate("let go\n")  # only once the run says it waits: whatever the machine's speed
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert waiting.startswith(f"Waiting up to 60 s for the DuckDB file {database} (held by PID {holder.pid}, ")
    assert summary_line(subprocess.CompletedProcess(run.args, 0, out)) == (
        "Rows loaded this run: collections 1, items 1000 (1 load package)"
    )


def test_collections_lists_what_the_api_shows_with_the_item_counts_it_gives(
    pgstac_server: PgstacServer, rustac_server: RustacServer, tmp_path: Path
) -> None:
    counted = run_main_job(tmp_path, "collections", "--url", pgstac_server.url)
    uncounted = run_main_job(tmp_path, "collections", "--url", rustac_server.url, "--prefix", "j")

    assert counted.returncode == 0, counted.stderr
    rows = {line.split()[0]: line.split()[1] for line in counted.stdout.splitlines()[1:] if line.strip()}
    assert {key: rows[key] for key in ("naip", "joplin", "3dep-lidar-dsm")} == {
        "naip": "1000",
        "joplin": "30",
        "3dep-lidar-dsm": "4",
    }
    assert counted.stdout.splitlines()[0].split() == ["collection", "items", "title"]
    assert uncounted.returncode == 0, uncounted.stderr
    assert uncounted.stdout.splitlines()[1].split() == ["joplin", "?"], "rustac does not count: no title either"
    assert uncounted.stdout.splitlines()[-1] == f"1 collection at {rustac_server.url}"


def test_help_lists_every_command(tmp_path: Path) -> None:
    shown = run_main_job(tmp_path, "--help")

    assert shown.returncode == 0
    commands = shown.stdout[shown.stdout.index("commands (each with its own --help):") :].splitlines()[1:3]
    assert [line.split()[0] for line in commands] == ["login", "collections"]


def test_runs_into_duckdb_and_into_postgres_keep_their_own_pipelines(
    rustac_server: RustacServer, postgres_database: str, tmp_path: Path
) -> None:
    into_postgres = {"DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
    duckdb_run = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "joplin")
    postgres_run = run_main_job(
        tmp_path, "--url", rustac_server.url, "--collections", "joplin", "--destination", "postgres", env=into_postgres
    )
    again = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "joplin")

    for run in (duckdb_run, postgres_run, again):
        assert run.returncode == 0, run.stderr
        assert "in state differs from destination" not in run.stderr
    assert summary_line(postgres_run) == "Rows loaded this run: collections 1, items 30 (1 load package)"
    assert summary_line(again) == "Rows loaded this run: no rows (0 load packages)", "its own state, untouched"
    pipelines = tmp_path / "dlt" / "pipelines"
    assert sorted(path.name for path in pipelines.iterdir() if path.is_dir()) == ["terrabyte", "terrabyte_postgres"]
    assert dlt.attach("terrabyte_postgres", pipelines_dir=str(pipelines)).destination.destination_name == "postgres"


PACKAGE_LINE = re.compile(
    r"Load package (\d+) loaded: ([\d,]+) of 1,034 items \((\d+)%\), [\d,]+ items/s, \d+:\d\d left \((.+)\)"
)
COLLECTION_NOTE = re.compile(r"([\w-]+) ([\d,]+) of ([\d,]+)")


def test_progress_is_a_line_per_package_off_a_terminal_and_one_line_redrawn_on_one(
    pgstac_server: PgstacServer, tmp_path: Path
) -> None:
    """pgstac tells each search's `numberMatched`: the total is known from the start."""
    arguments = ("--url", pgstac_server.url, "--collections", "naip,joplin,3dep-lidar-dsm", "--package-size", "300")
    for folder in ("lines", "bar", "quiet"):
        (tmp_path / folder).mkdir()
    lines = run_main_job(tmp_path / "lines", *arguments)
    bar = run_main_job(tmp_path / "bar", *arguments, "--progress", "bar")
    quiet = run_main_job(tmp_path / "quiet", *arguments, "--quiet")

    assert [run.returncode for run in (lines, bar, quiet)] == [0, 0, 0], lines.stderr + bar.stderr + quiet.stderr
    packages = [PACKAGE_LINE.fullmatch(line) for line in lines.stderr.splitlines()]
    assert all(packages), lines.stderr
    numbers = [(int(match[1]), int(match[2].replace(",", ""))) for match in packages if match]
    assert [number for number, _ in numbers] == list(range(1, len(numbers) + 1)) and len(numbers) >= 3
    assert [items for _, items in numbers] == sorted(items for _, items in numbers) and numbers[-1][1] == 1034
    notes = [COLLECTION_NOTE.fullmatch(note) for match in packages if match for note in match[4].split(", ")]
    assert all(notes), lines.stderr
    totals = {"naip": 1000, "joplin": 30, "3dep-lidar-dsm": 4}
    assert {note[1]: int(note[3].replace(",", "")) for note in notes if note}.items() <= totals.items(), "own totals"
    assert all(int(note[2].replace(",", "")) <= totals[note[1]] for note in notes if note)
    redrawn = bar.stderr.splitlines()  # each `\r` read as a line end (text mode)
    assert not any(line.startswith("Load package") for line in redrawn) and len(redrawn) > 2
    assert redrawn[-1].startswith("1,034 of 1,034 items (100%), "), bar.stderr
    assert quiet.stderr == ""
    for run in (lines, quiet):
        assert summary_line(run).startswith("Rows loaded this run: collections 3, items 1034 (")
    assert summary_line(lines).endswith(f"({len(numbers)} load packages)")
