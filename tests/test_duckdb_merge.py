"""The main job's DuckDB merge: a package deduplicated by its keys alone (`pipelines/duckdb_merge.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import dlt
import duckdb

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def duckdb_merge_module() -> Any:
    """`pipelines/duckdb_merge.py`, a neighbour of the main job rather than a package module."""
    spec = importlib.util.spec_from_file_location("duckdb_merge", PIPELINES / "duckdb_merge.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dlt.resource(
    write_disposition="merge",
    primary_key=("collection", "id"),
    columns={"_stac_deleted": {"data_type": "bool", "hard_delete": True}},
)
def items(rows: list[dict[str, Any]]) -> Any:
    yield rows


def test_a_package_holding_an_item_twice_merges_it_once_and_deletes_by_its_key(tmp_path: Path) -> None:
    database = tmp_path / "merge.duckdb"
    destination = duckdb_merge_module().duckdb_keys_only_dedup(credentials=str(database))
    pipeline = dlt.pipeline("merge", destination=destination, dataset_name="m", pipelines_dir=str(tmp_path / "p"))
    twice = {"collection": "c", "id": "a", "v": 1}

    pipeline.run(items([twice, {"collection": "c", "id": "b", "v": 1}, twice]))
    info = pipeline.run(
        items(
            [
                {"collection": "c", "id": "b", "_stac_deleted": True},
                {"collection": "c", "id": "c", "v": 2},
                {"collection": "c", "id": "c", "v": 2},
                {"collection": "d", "id": "a", "v": 3},
            ]
        )
    )

    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("SELECT collection, id, v FROM m.items ORDER BY ALL").fetchall()
    assert rows == [("c", "a", 1), ("c", "c", 2), ("d", "a", 3)]
    merges = [job for job in info.load_packages[0].jobs["completed_jobs"] if job.file_path.endswith(".sql")]
    assert merges and all("min(rowid)" in Path(job.file_path).read_text() for job in merges), "this merge ran"
    assert pipeline.destination.destination_type == "dlt.destinations.duckdb", "dlt's state keeps its destination"
