"""The local STAC API stack serves exactly the items of the folder it was loaded from."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import psycopg2
import pytest
from pystac_client import Client

from stack import CatalogFolder, PgstacServer, RustacServer
from stack.__main__ import stack_workdir
from stack.processes import free_port, is_running, port_is_taken

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def item_ids_served(url: str, collection_ids: list[str], page_size: int = 100) -> dict[str, set[str]]:
    """Pages every item of the collections out of the API with pystac-client (POST /search)."""
    search = Client.open(url).search(collections=collection_ids, limit=page_size, method="POST")
    served: dict[str, set[str]] = defaultdict(set)
    count = 0
    for item in search.items_as_dicts():
        served[item["collection"]].add(item["id"])
        count += 1
    assert count == sum(len(ids) for ids in served.values()), "an item was served twice"
    return dict(served)


def test_sample_data_is_what_its_readme_says(sample_catalog: CatalogFolder) -> None:
    counts = {collection: len(ids) for collection, ids in sample_catalog.item_ids_by_collection().items()}
    assert len(counts) == 13
    assert counts["naip"] == 1000
    assert counts["joplin"] == 30
    assert sum(counts.values()) == 1074


@pytest.mark.parametrize("server_fixture", ["pgstac_server", "rustac_server"])
def test_server_pages_out_every_sample_item(
    server_fixture: str, sample_catalog: CatalogFolder, request: pytest.FixtureRequest
) -> None:
    server: PgstacServer | RustacServer = request.getfixturevalue(server_fixture)
    expected = sample_catalog.item_ids_by_collection()

    served = item_ids_served(server.url, sorted(expected))

    assert {collection: len(ids) for collection, ids in served.items()} == {
        collection: len(ids) for collection, ids in expected.items()
    }
    assert served == expected


def test_pgstac_reports_number_matched_and_transactions(pgstac_server: PgstacServer) -> None:
    client = Client.open(pgstac_server.url)
    assert client.conforms_to("ITEM_SEARCH")
    assert "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction" in client.get_conforms_to()
    assert client.search(collections=["naip"], limit=10).matched() == 1000


def test_postgres_database_fixture_gives_a_fresh_database(postgres_database: str) -> None:
    with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'")
        database, tables = cursor.fetchone()
    assert database == "dest_test_postgres_database_fixture_gives_a_fresh_database"
    assert tables == 0


def write_catalog_folder(root: Path, sample: CatalogFolder, collection_ids: list[str]) -> None:
    """Copies sample collections into `root`, with plain (not gzipped) ndjson items."""
    for files in sample.collections:
        if files.collection_id in collection_ids:
            folder = root / files.collection_id
            folder.mkdir(parents=True)
            shutil.copy(files.collection_json, folder / "collection.json")
            with files.open_items() as source, (folder / "items.ndjson").open("w") as target:
                shutil.copyfileobj(source, target)


def run_stack_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.servers
@pytest.mark.parametrize("server", ["pgstac", "rustac"])
def test_stack_up_serves_any_folder_and_down_leaves_nothing(
    server: str, tmp_path: Path, sample_catalog: CatalogFolder
) -> None:
    write_catalog_folder(tmp_path, sample_catalog, ["joplin", "3dep-lidar-copc"])
    port = free_port()
    workdir = stack_workdir(port)

    started = run_stack_command("up", "--server", server, "--data", str(tmp_path), "--port", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"STAC API: http://127.0.0.1:{port}" in started.stdout.splitlines()
        pids = [int(pidfile.read_text()) for pidfile in workdir.glob("*.pid")]
        assert len(pids) == 1 and is_running(pids[0])
        served = item_ids_served(f"http://127.0.0.1:{port}", ["joplin", "3dep-lidar-copc", "naip"], page_size=7)
        assert served == CatalogFolder(tmp_path).item_ids_by_collection()
        assert len(served["joplin"]) == 30
    finally:
        stopped = run_stack_command("down", "--port", str(port))

    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not workdir.exists()
    assert not any(is_running(pid) for pid in pids)
    assert not port_is_taken(port)


@pytest.mark.servers
def test_stack_up_loads_every_item_pgstac_accepts_and_names_the_others(
    tmp_path: Path, sample_catalog: CatalogFolder
) -> None:
    items = list(sample_catalog.files_of("joplin").items())
    backwards, bad_geometry = items[3], items[17]
    backwards["properties"].update(start_datetime="2021-01-02T00:00:00Z", end_datetime="2021-01-01T00:00:00Z")
    bad_geometry["geometry"] = {"type": "Polygon", "coordinates": "not coordinates"}
    (tmp_path / "joplin").mkdir()
    shutil.copy(sample_catalog.files_of("joplin").collection_json, tmp_path / "joplin" / "collection.json")
    (tmp_path / "joplin" / "items.ndjson").write_text("".join(json.dumps(item) + "\n" for item in items))
    port = free_port()

    started = run_stack_command("up", "--data", str(tmp_path), "--port", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        refusals = [line for line in started.stdout.splitlines() if "refused by pgstac" in line]
        assert len(refusals) == 2, started.stdout
        assert refusals[0] == (
            f"1 item of joplin refused by pgstac: start_datetime must be < end_datetime (ids {backwards['id']})"
        )
        assert refusals[1].startswith("1 item of joplin refused by pgstac: CoordinateError: ")
        assert refusals[1].endswith(f" (ids {bad_geometry['id']})")
        assert "serves 1 collections, 28 items" in started.stdout
        served = item_ids_served(f"http://127.0.0.1:{port}", ["joplin"])
        assert served == {"joplin": {item["id"] for item in items} - {backwards["id"], bad_geometry["id"]}}
    finally:
        stopped = run_stack_command("down", "--port", str(port))

    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not stack_workdir(port).exists()


def test_stack_up_refuses_a_folder_without_collections(tmp_path: Path) -> None:
    (tmp_path / "naip").mkdir()
    (tmp_path / "naip" / "items.ndjson.gz").write_bytes(gzip.compress(json.dumps({"id": "x"}).encode()))

    started = run_stack_command("up", "--data", str(tmp_path), "--port", str(free_port()))

    assert started.returncode == 1
    assert started.stderr.startswith(f"stack: no collections in {tmp_path.resolve()}: expected <collection>/")
    assert "Traceback" not in started.stderr
