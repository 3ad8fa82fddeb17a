"""dlt's dashboard of the main job (`make dashboard`), in a real browser: headless Chromium, driven by playwright,
shows the pipeline, its last run and the tables' row counts; a run of the main job while the dashboard is open
loads, and the dashboard then shows its rows."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt._workspace.helpers.dashboard.runner import run_dashboard_command
from playwright.sync_api import Locator, Page, expect, sync_playwright

from stack import RustacServer
from stack.chromium import CHROMIUM, HEADLESS_FLAGS
from stack.processes import ServerProcess, free_port
from tests.test_main_pipeline import main_job_environment, run_main_job, summary_line

SHOWN_WITHIN_MS = 60_000
"""How long the browser waits for what the dashboard is to show (its first page computes every cell)."""
CLICK_AGAIN_AFTER_MS = 5_000


def dashboard_environment(workdir: Path) -> dict[str, str]:
    """What `make dashboard` sets, and the main job's DuckDB file named the dlt way, for the dashboard and the job."""
    return {
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "terrabyte.duckdb"),
        "DESTINATION__DUCKDB__CREDENTIALS__EXTENSIONS": '["spatial"]',
        "PATH": f"{Path(sys.executable).parent}:{main_job_environment(workdir, None)['PATH']}",
    }


@pytest.fixture()
def dashboard(tmp_path: Path) -> Iterator[str]:
    """dlt's dashboard of the `terrabyte` pipeline in `tmp_path` (as `make dashboard` starts it), on a port of its
    own: its URL."""
    port = free_port()
    command = run_dashboard_command(
        pipeline_name="terrabyte", pipelines_dir=str(tmp_path / "dlt" / "pipelines"), port=port, headless=True
    )
    env = main_job_environment(tmp_path, dashboard_environment(tmp_path))
    server = ServerProcess("dashboard", command, tmp_path / "dashboard.log", env)
    try:
        server.wait_until_ready(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


@pytest.fixture()
def browser_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(HEADLESS_FLAGS))
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 2400})
        finally:
            browser.close()


def open_row_counts(page: Page, url: str, counts: dict[str, str]) -> None:
    """Opens the dashboard and, once it shows the last run, its section "Dataset: Browse Data and State" (the
    third of its six switches), then asks for the tables' row counts until each table shows its count in
    `counts` at once: a click while the section still renders is lost, the first shows the counts the dashboard
    read before, if any (the next one reads them again, as it says), and the section may render again without
    them (selecting its first table)."""
    page.goto(url)
    expect(page.get_by_text("Pipeline terrabyte", exact=True).first).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_text("succeeded", exact=True)).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_role("switch")).to_have_count(6, timeout=SHOWN_WITHIN_MS)
    page.get_by_role("switch").nth(2).click()
    shown = [row_count(page, table, count) for table, count in counts.items()]
    for _ in range(SHOWN_WITHIN_MS // CLICK_AGAIN_AFTER_MS):
        page.get_by_role("button", name="Load row counts").click(timeout=SHOWN_WITHIN_MS)
        try:
            for cell in shown:
                expect(cell).to_be_visible(timeout=CLICK_AGAIN_AFTER_MS)
            return
        except AssertionError:
            continue
    for cell in shown:
        expect(cell).to_be_visible()


def row_count(page: Page, table: str, count: str) -> Locator:
    """The cell that shows `count` in the row of `table` in the dashboard's list of tables."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=table, exact=True))
    return row.get_by_role("cell", name=count, exact=True)


def test_the_dashboard_shows_the_runs_and_tables_and_a_run_loads_while_it_is_open(
    rustac_server: RustacServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dashboard_environment(tmp_path)
    first = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin", env=env)
    assert first.returncode == 0, first.stderr
    url = request.getfixturevalue("dashboard")
    page: Page = request.getfixturevalue("browser_page")

    open_row_counts(page, url, {"items": "1,030", "collections": "2"})

    again = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "naip,joplin,3dep-lidar-dsm", env=env)

    assert again.returncode == 0, again.stderr
    assert summary_line(again) == "Rows loaded this run: collections 1, items 4 (1 load package)"
    open_row_counts(page, url, {"items": "1,034", "collections": "3"})  # a new session, as a user reloads the page
