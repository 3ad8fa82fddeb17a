"""The source works when its folder is copied, under another name, into the `sources/` folder of another project,
as dlt's own sources are: relative imports only, and its `[sources.stac]` config section whatever the folder's name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from stack import RustacServer

SOURCE_FOLDER = Path(__file__).resolve().parents[1] / "sources" / "stac"

PIPELINE_SCRIPT = """
import sys

sys.modules["dlt_stac"] = None  # the installed package must not be used: `import dlt_stac` fails

import dlt
from sources.copied_stac import stac
from sources.copied_stac.runs import run_in_packages

pipeline = dlt.pipeline("copied", destination=dlt.destinations.duckdb("copied.duckdb"), dataset_name="stac")
run_in_packages(pipeline, stac())
with pipeline.sql_client() as client:
    for collection, count in client.execute_sql("SELECT collection, COUNT(*) FROM items GROUP BY collection"):
        print(collection, count)
"""


def test_a_copy_of_the_folder_loads_in_another_project(rustac_server: RustacServer, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SOURCE_FOLDER, project / "sources" / "copied_stac", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".dlt").mkdir()
    (project / ".dlt" / "config.toml").write_text('[sources.stac]\ncollections = ["joplin"]\n')
    (project / "copied_pipeline.py").write_text(PIPELINE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DLT_", "SOURCES__", "PYTHONPATH"))}
    env.update(SOURCES__STAC__URL=rustac_server.url, DLT_DATA_DIR=str(project / "dlt-data"))

    result = subprocess.run(
        [sys.executable, "copied_pipeline.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["joplin", "30"]
