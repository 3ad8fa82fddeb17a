"""The main job loads where, and as, the user's dlt configuration says: every dlt way of naming the DuckDB file,
and the user's own DuckDB settings beside the job's."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from stack import RustacServer
from tests.test_main_pipeline import PROJECT_ROOT, run_main_job, summary_line


def project_with(tmp_path: Path, config: str = "", secrets: str = "") -> Path:
    """A dlt project folder: the project's own `.dlt/config.toml` with `config` added, and `secrets` as its
    secrets.toml."""
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / ".dlt" / "config.toml", project / ".dlt" / "config.toml")
    with open(project / ".dlt" / "config.toml", "a") as file:
        file.write(config)
    (project / ".dlt" / "secrets.toml").write_text(secrets)
    return project


def joplin_ids(database: Path) -> int:
    with duckdb.connect(str(database), read_only=True) as connection:
        [(count,)] = connection.execute("SELECT COUNT(DISTINCT id) FROM terrabyte_stac.items").fetchall()
    return int(count)


@pytest.mark.parametrize("way", ["secrets.toml", "secrets.toml table", "environment", "duckdb URL"])
def test_the_duckdb_file_is_the_one_dlt_configuration_names(
    rustac_server: RustacServer, tmp_path: Path, way: str
) -> None:
    database = tmp_path / "data" / "stac.duckdb"
    database.parent.mkdir()
    secrets = {
        "secrets.toml": f'[destination.duckdb]\ncredentials = "{database}"\n',
        "secrets.toml table": f'[destination.duckdb.credentials]\ndatabase = "{database}"\n',
    }
    project = project_with(tmp_path, secrets=secrets.get(way, ""))
    env = {"DLT_PROJECT_DIR": str(project)}
    if way == "environment":
        env["DESTINATION__DUCKDB__CREDENTIALS"] = str(database)
    if way == "duckdb URL":
        env["DESTINATION__DUCKDB__CREDENTIALS"] = f"duckdb:///{database}"
    workdir = tmp_path / "work"
    workdir.mkdir()

    result = run_main_job(workdir, "--url", rustac_server.url, "--collections", "joplin", env=env)

    assert result.returncode == 0, result.stderr
    assert summary_line(result) == "Rows loaded this run: collections 1, items 30 (1 load package)"
    assert joplin_ids(database) == 30
    assert not list(workdir.glob("*.duckdb")), "nothing in the working folder"


def test_a_duckdb_file_named_in_config_toml_gets_dlts_refusal_and_where_to_name_it(
    rustac_server: RustacServer, tmp_path: Path
) -> None:
    project = project_with(tmp_path, config=f'\n[destination.duckdb]\ncredentials = "{tmp_path / "stac.duckdb"}"\n')

    result = run_main_job(
        tmp_path, "--url", rustac_server.url, "--collections", "joplin", env={"DLT_PROJECT_DIR": str(project)}
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: Provider `config.toml` cannot hold secret values but key `destination.duckdb.credentials` with secret"
        " value is present",
        "dlt reads `destination.duckdb.credentials` from .dlt/secrets.toml or the environment variable "
        "DESTINATION__DUCKDB__CREDENTIALS, not from config.toml: move it there.",
    ]
    assert not list(tmp_path.glob("*.duckdb")), "nothing loaded elsewhere"


def test_without_a_file_named_the_job_writes_the_pipelines_file_in_the_working_folder(
    rustac_server: RustacServer, tmp_path: Path
) -> None:
    result = run_main_job(tmp_path, "--url", rustac_server.url, "--collections", "joplin")

    assert result.returncode == 0, result.stderr
    assert [path.name for path in tmp_path.glob("*.duckdb")] == ["terrabyte.duckdb"]
    assert joplin_ids(tmp_path / "terrabyte.duckdb") == 30


def test_the_users_own_duckdb_settings_are_kept_beside_the_jobs(rustac_server: RustacServer, tmp_path: Path) -> None:
    queries = tmp_path / "queries.log"
    settings = f'log_query_path = "{queries}"\n'
    project = project_with(tmp_path, secrets=f"[destination.duckdb.credentials.global_config]\n{settings}")

    result = run_main_job(
        tmp_path, "--url", rustac_server.url, "--collections", "joplin", env={"DLT_PROJECT_DIR": str(project)}
    )

    assert result.returncode == 0, result.stderr
    assert joplin_ids(tmp_path / "terrabyte.duckdb") == 30
    assert "SET SESSION search_path" in queries.read_text(), "DuckDB logged its queries there, as the user asked"
