"""The main job, run as a user runs it: flags, progress, load info and the per-collection summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.stack import RustacServer

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "terrabyte_pipeline.py"


def run_main_job(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DLT_DATA_DIR": str(workdir / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    return subprocess.run(
        [sys.executable, str(PIPELINE), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def test_main_job_loads_and_summarises_per_collection(rustac_server: RustacServer, tmp_path: Path) -> None:
    first = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin", "3dep-lidar-dsm")

    assert first.returncode == 0, first.stderr
    assert "Rows loaded this run: _dlt_pipeline_state 1, collections 3, items 1034" in first.stdout
    assert "Tables in terrabyte_stac: collections, items" in first.stdout
    summary = [line.split()[:2] for line in first.stdout.splitlines() if line.startswith(("naip ", "joplin ", "3dep"))]
    assert summary == [["3dep-lidar-dsm", "4"], ["joplin", "30"], ["naip", "1000"]]
    assert "2011-07-31 00:00:00+00:00 .. 2023-10-02 16:00:00+00:00" in first.stdout
    assert (tmp_path / "terrabyte.duckdb").exists()

    second = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin,3dep-lidar-dsm")
    assert "Rows loaded this run: collections 3" in second.stdout

    refreshed = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip", "--full-refresh")
    assert "Rows loaded this run: _dlt_pipeline_state 1, collections 1, items 1000" in refreshed.stdout


def test_main_job_reports_a_bad_collection_without_a_traceback(rustac_server: RustacServer, tmp_path: Path) -> None:
    result = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "nope")

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: Unknown collection(s) nope at {rustac_server.url}. The API has: 3dep-")
    assert "Traceback" not in result.stderr
