"""The GitHub Actions schedule of the main job (.github/workflows/main_job.yml): it names secrets that dlt reads
where the job needs them, guards against overlapping runs, and its command loads."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import dlt
import pytest
import yaml
from dlt.common.configuration import resolve_configuration

from dlt_stac.auth import StacApiCredentials
from stack import CatalogFolder, RustacServer
from tests.test_main_pipeline import PROJECT_ROOT, run_main_job, summary_line

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "main_job.yml"


def workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def load_command() -> list[str]:
    [load] = [step for step in workflow()["jobs"]["load"]["steps"] if step.get("name") == "Load"]
    return shlex.split(load["run"])


def test_the_workflow_runs_on_a_schedule_one_run_at_a_time() -> None:
    flow = workflow()
    [schedule] = flow[True]["schedule"]  # YAML 1.1 reads the key `on` as true
    assert len(schedule["cron"].split()) == 5
    assert flow["concurrency"] == {"group": "terrabyte-main-job", "cancel-in-progress": False}


def test_each_secret_is_the_environment_variable_dlt_reads_where_the_job_needs_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = workflow()["env"]
    assert env == {name: f"${{{{ secrets.{name} }}}}" for name in env}, "each secret under its own name"
    assert sorted(env) == ["DESTINATION__POSTGRES__CREDENTIALS", "SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN"]
    monkeypatch.setenv("SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN", "refresh-token-from-the-secret")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://loader:pw@db.example:5432/stac")

    credentials = resolve_configuration(StacApiCredentials(), sections=("sources", "stac"))
    pipeline = dlt.pipeline("schedule_check", destination="postgres", pipelines_dir=str(tmp_path))
    destination = pipeline.destination_client().config.credentials  # as the main job reads it, not connected

    assert credentials.refresh_token == "refresh-token-from-the-secret"
    assert (destination.host, destination.database) == ("db.example", "stac")


def test_the_workflow_command_loads_into_postgres(
    rustac_server: RustacServer, sample_catalog: CatalogFolder, postgres_database: str, tmp_path: Path
) -> None:
    """The command as the workflow runs it, with the API's URL from the environment (dlt's way over config.toml)
    pointing at a local server, and the Postgres secret."""
    python, script, *arguments = load_command()
    assert python == "python" and (PROJECT_ROOT / script).is_file()
    env = {"SOURCES__STAC__URL": rustac_server.url, "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}

    loaded = run_main_job(tmp_path, *arguments, "--collections", "joplin", env=env)

    assert loaded.returncode == 0, loaded.stderr
    joplin = len(sample_catalog.item_ids_by_collection()["joplin"])
    assert summary_line(loaded).startswith(f"Rows loaded this run: collections 1, items {joplin} (")
