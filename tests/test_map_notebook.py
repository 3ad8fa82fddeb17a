"""The map notebook (`make map`), exported headless as a user would: the footprints on a map and the items per
collection over time, from the main job's tables in DuckDB and in Postgres (PostGIS geometry), with no network."""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from stack import CatalogFolder, RustacServer
from tests.test_main_pipeline import PROJECT_ROOT, destination_environment, main_job_environment, run_main_job

NOTEBOOK = PROJECT_ROOT / "pipelines" / "map_notebook.py"


def exported_notebook(workdir: Path, *arguments: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """The notebook's HTML export, run in `workdir` as the main job was, and the PNG of its map."""
    html, png = workdir / "map.html", workdir / "map.png"
    command = [sys.executable, "-m", "marimo", "export", "html", str(NOTEBOOK), "-o", str(html)]
    exported = subprocess.run(
        [*command, "--", "--png", str(png), *arguments], cwd=workdir, env=main_job_environment(workdir, env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    return html.read_text(), png


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def text_of(html: str) -> str:
    """The export's text, its cells' HTML (escaped in the JSON it embeds) without tags."""
    return re.sub(r"<[^>]*>", "", html.replace("\\u003C", "<").replace("\\u003E", ">"))


def figures_in(html: str) -> int:
    """How many PNG images the export holds (marimo embeds a figure as a base64 data URL, escaped in its JSON)."""
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]{1000,})", html.replace("\\/", "/"))
    return sum(1 for image in images if base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_the_map_notebook_draws_the_footprints_and_the_items_over_time(
    destination: str,
    rustac_server: RustacServer,
    sample_catalog: CatalogFolder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    env = destination_environment(destination, request)
    loaded = run_main_job(tmp_path, "--url", rustac_server.url, "--destination", destination, env=env)
    assert loaded.returncode == 0, loaded.stderr

    pipeline = ["--pipeline", "terrabyte_postgres"] if destination == "postgres" else []
    html, png = exported_notebook(tmp_path, *pipeline, "--footprints", "500", env=env)

    served = sample_catalog.item_ids_by_collection()
    total = sum(len(ids) for ids in served.values())
    assert (
        f"{total:,} items in {len(served)} collections of terrabyte_stac ({destination}); the footprints of 500 drawn."
        in (text_of(html))
    )
    assert figures_in(html) == 2, "the map and the items over time"
    assert png_size(png) == (1000, 600)
