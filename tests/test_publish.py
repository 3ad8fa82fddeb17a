"""Publishing into a STAC API: pipelines/publish_pipeline.py and the `stac_api` destination, run as a user runs
them, against pgstac with Transactions behind stac-auth-proxy, signed in with the tests' OIDC provider."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from dlt_stac import stac
from dlt_stac.auth import StacApiCredentials, authorizer_for
from dlt_stac.auth.authorizers import Anonymous
from dlt_stac.publish import Rejection, StacTransactions, stac_api
from dlt_stac.publish.checks import publish_digest, without_nulls
from stack import CatalogFolder
from stack.auth_proxy import AuthProxy
from stack.fault_proxy import FaultProxy, Faults
from stack.oidc_provider import PUBLIC_CLIENT, OidcTestProvider
from tests.stac_helpers import loaded_ids
from tests.test_main_pipeline import destination_environment, run_main_job

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PUBLISH = PROJECT_ROOT / "pipelines" / "publish_pipeline.py"
KILL_AT = Path(__file__).with_name("kill_at.py")
ACCEPTED_COLLECTIONS = ("joplin", "io-lulc", "landsat-c2-l2")
"""Sample collections whose extents stac-fastapi's validation accepts (naip's bboxes fall outside its first)."""


def credentials(provider: OidcTestProvider) -> StacApiCredentials:
    return StacApiCredentials(issuer=provider.issuer, client_id=PUBLIC_CLIENT, refresh_token=provider.start_session())


def publish_env(workdir: Path, provider: OidcTestProvider, **settings: str) -> dict[str, str]:
    return {
        **os.environ, "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(workdir / "dlt"),
        "SOURCES__STAC__CREDENTIALS__ISSUER": provider.issuer,
        "SOURCES__STAC__CREDENTIALS__CLIENT_ID": PUBLIC_CLIENT,
        "SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN": provider.start_session(),
        **settings,
    }  # fmt: skip


def run_publish(
    workdir: Path, env: dict[str, str], api_url: str, *args: str, kill_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    script = [str(KILL_AT)] if kill_at else [str(PUBLISH)]
    kill = {"KILL_AT": kill_at, "KILL_SCRIPT": str(PUBLISH)} if kill_at else {}
    return subprocess.run(
        [sys.executable, *script, "--url", api_url, *args], cwd=workdir, env={**env, **kill},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def write_collection(root: Path, collection: dict[str, Any], items: list[Any]) -> Path:
    """A collection folder as the publish reads it; an item that is a `str` is written as that line."""
    folder = root / collection["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collection.json").write_bytes(orjson.dumps(collection))
    lines = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]
    with gzip.open(folder / "items.ndjson.gz", "wt") as file:
        file.write("\n".join(lines) + "\n")
    return folder


def renamed_sample(root: Path, catalog: CatalogFolder, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The accepted sample collections under `prefix` ids, written to `root`; their items by collection id."""
    written = {}
    for name in ACCEPTED_COLLECTIONS:
        files = catalog.files_of(name)
        collection_id = f"{prefix}{name}"
        items = [{**item, "collection": collection_id} for item in files.items()]
        write_collection(root, {**files.collection(), "id": collection_id}, items)
        written[collection_id] = items
    return written


def held_items(api: StacTransactions, collection_id: str) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in api.items(collection_id, 1000)}


def as_served(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the API serves what was published: links aside (the server writes its own), and without null
    members, which stac-fastapi's Transactions leave out (io-lulc's `label:properties: null`)."""
    return without_nulls({key: value for key, value in item.items() if key != "links"})


def summary(collection_id: str, collection: str, created: int = 0, updated: int = 0, unchanged: int = 0,
            deleted: int = 0, rejected: int = 0) -> str:  # fmt: skip
    """The summary line of a publish of one collection."""
    return (f"{collection_id}: collection {collection}; items created {created}, updated {updated}, "
            f"unchanged {unchanged}, deleted {deleted}, rejected {rejected}")  # fmt: skip


def summary_of(result: subprocess.CompletedProcess[str], collection_id: str) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith(f"{collection_id}")]
    return line


@pytest.fixture()
def api(auth_proxy: AuthProxy, oidc_provider: OidcTestProvider) -> StacTransactions:
    """The write endpoints behind the proxy, signed in as the test user, to look at what a publish did."""
    return StacTransactions(auth_proxy.url, authorizer_for(auth_proxy.url, credentials(oidc_provider)), 2, 0.1, 30)


def test_a_publish_round_trips_and_a_second_one_changes_only_what_changed(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    duckdb_pipeline: Any, tmp_path: Path,
) -> None:  # fmt: skip
    source = tmp_path / "source"
    written = renamed_sample(source, sample_catalog, "test-user.round-trip-")
    env = publish_env(tmp_path, oidc_provider)

    first = run_publish(tmp_path, env, auth_proxy.url, str(source))

    assert first.returncode == 0, first.stderr
    for collection_id, items in written.items():
        assert summary_of(first, collection_id) == summary(collection_id, "created", created=len(items))
        held = held_items(api, collection_id)
        assert {item_id: as_served(item) for item_id, item in held.items()} == {
            item["id"]: as_served(item) for item in items
        }, "the API serves each item as it was published"
    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=list(written), credentials=credentials(oidc_provider)))
    assert loaded_ids(duckdb_pipeline) == {cid: {item["id"] for item in items} for cid, items in written.items()}

    again = run_publish(tmp_path, env, auth_proxy.url, str(source))

    assert again.returncode == 0, again.stderr
    for collection_id, items in written.items():
        assert summary_of(again, collection_id) == summary(collection_id, "unchanged", unchanged=len(items))

    joplin = "test-user.round-trip-joplin"
    edited, dropped, *kept = written[joplin]
    edited = {**edited, "properties": {**edited["properties"], "test:edited": True}}
    write_collection(source, {**sample_catalog.files_of("joplin").collection(), "id": joplin}, [edited, *kept])

    dry = run_publish(tmp_path, env, auth_proxy.url, "--dry-run", "--delete-missing", str(source / joplin))
    changed = run_publish(tmp_path, env, auth_proxy.url, "--delete-missing", str(source / joplin))

    expected = summary(joplin, "unchanged", updated=1, unchanged=len(kept), deleted=1)
    assert summary_of(dry, joplin) == expected.replace(":", " (dry run: what would change):", 1)
    assert summary_of(changed, joplin) == expected
    held = held_items(api, joplin)
    assert set(held) == {edited["id"], *(item["id"] for item in kept)}
    assert held[edited["id"]]["properties"]["test:edited"] is True
    assert publish_digest(held[edited["id"]]) == publish_digest(edited)
    tokens = [env["SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN"], *oidc_provider.issued.access_tokens]
    written = b"".join(path.read_bytes() for path in (tmp_path / "dlt").rglob("*") if path.is_file())
    for output in (first, again, dry, changed):
        assert not any(token in output.stdout + output.stderr for token in tokens)
    assert written and not any(token.encode() in written for token in tokens), "no token in its state or trace"


def test_items_that_are_not_valid_stac_or_that_the_api_refuses_are_said_and_the_rest_published(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    tmp_path: Path,
) -> None:  # fmt: skip
    collection_id = "team-box.bad-input"
    files = sample_catalog.files_of("joplin")
    good = list(files.items())
    template = good[0]
    no_id = {key: value for key, value in template.items() if key != "id"}
    no_geometry = {key: value for key, value in template.items() if key != "geometry"} | {"id": "no-geometry"}
    bad_datetime = template | {"id": "bad-datetime", "properties": template["properties"] | {"datetime": "yesterday"}}
    null_geometry = template | {"id": "null-geometry", "geometry": None}
    folder = write_collection(
        tmp_path / "source",
        {**files.collection(), "id": collection_id},
        [*good[:10], no_id, no_geometry, '{"type": "Feature", "id": "cut-off', bad_datetime, null_geometry, *good[10:]],
    )

    result = run_publish(tmp_path, publish_env(tmp_path, oidc_provider), auth_proxy.url, str(folder))

    assert result.returncode == 3, result.stderr
    assert summary_of(result, collection_id) == summary(collection_id, "created", created=len(good), rejected=5)
    rejected = sorted(line for line in result.stderr.splitlines() if line.startswith("  rejected "))
    assert rejected == sorted([
        f"  rejected {collection_id}/(no id): the item has no id",
        f"  rejected {collection_id}/no-geometry: the item has no geometry key (it may be null, but it must be there)",
        f"  rejected {collection_id}/(no id): not JSON: items.ndjson.gz line 13: unexpected end of data: line 1 "
        "column 35 (char 34)",
        f"  rejected {collection_id}/bad-datetime: properties.datetime is not an RFC 3339 timestamp: 'yesterday'",
        f"  rejected {collection_id}/null-geometry: refused by the API: Missing or null `geometry` for Item "
        "(null-geometry). Geometry is required in pgstac.",
    ])  # fmt: skip
    assert set(held_items(api, collection_id)) == {item["id"] for item in good}


@pytest.mark.parametrize(
    ("collection_id", "why"),
    [
        ("someone-else.naip", ""),
        ("archive.naip", " (its prefix is a read-only DSS container of yours)"),
        ("team-box-mgr.naip", ""),
    ],
)
def test_a_collection_the_prefix_rule_refuses_is_named_and_nothing_is_sent(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    tmp_path: Path, collection_id: str, why: str,
) -> None:  # fmt: skip
    folder = sample_catalog.files_of("joplin").collection_json.parent

    result = run_publish(tmp_path, publish_env(tmp_path, oidc_provider), auth_proxy.url, "--collection",
                         collection_id, str(folder))  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"error: Not publishing: collection `{collection_id}` is not yours to write{why}: on terrabyte a private "
        "collection's id starts with your user name or a DSS container of yours and a dot; your writable prefixes "
        "are `test-user.`, `team-box.`. Publish it under such an id (`--collection <prefix><name>`)."
    )
    assert api.collection(collection_id) is None


@pytest.mark.parametrize("moment", ["publish:sent@2", "job:start:items.*", "package:loaded", "extract:committed"])
def test_a_kill_during_a_publish_then_one_rerun_holds_every_item_once(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    tmp_path: Path, moment: str,
) -> None:  # fmt: skip
    collection_id = "test-user.killed-" + "".join(char if char.isalnum() else "-" for char in moment)
    files = sample_catalog.files_of("joplin")
    items = [{**item, "collection": collection_id} for item in files.items()]
    folder = write_collection(tmp_path / "source", {**files.collection(), "id": collection_id}, items)
    env = publish_env(tmp_path, oidc_provider, PUBLISH__BATCH_SIZE="10")

    killed = run_publish(tmp_path, env, auth_proxy.url, str(folder), kill_at=moment)
    rerun = run_publish(tmp_path, env, auth_proxy.url, str(folder))

    assert killed.returncode == -9 and "KILLED AT" in killed.stderr, killed.stderr[-2000:]
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    held = held_items(api, collection_id)
    assert {item_id: publish_digest(item) for item_id, item in held.items()} == {
        item["id"]: publish_digest(item) for item in items
    }


def test_without_a_bulk_endpoint_items_are_posted_one_by_one_and_replaced_where_they_exist(
    api: StacTransactions, sample_catalog: CatalogFolder
) -> None:
    collection_id = "team-box.one-by-one"
    api.create_collection({**sample_catalog.files_of("joplin").collection(), "id": collection_id, "links": []})
    first, second = list(sample_catalog.files_of("joplin").items())[:2]
    api.has_bulk_items = False

    assert api.upsert_items(collection_id, [first]) == []
    edited = {**first, "properties": {**first["properties"], "test:edited": 1}}
    refused = api.upsert_items(collection_id, [edited, {**second, "geometry": None}])

    assert refused == [
        Rejection(collection_id, second["id"], f"refused by the API (HTTP 400): Missing or null `geometry` for Item "
                  f"({second['id']}). Geometry is required in pgstac.")
    ]  # fmt: skip
    held = held_items(api, collection_id)
    assert list(held) == [first["id"]]
    assert held[first["id"]]["properties"]["test:edited"] == 1, "the existing item was replaced (409, then PUT)"
    assert api.delete_item(collection_id, first["id"]) is None
    assert api.delete_item(collection_id, first["id"]) is None, "deleting what is gone already succeeds"
    assert api.delete_collection(collection_id) is True
    assert api.collection(collection_id) is None
    assert list(api.items(collection_id, 10)) == [], "a missing collection holds no items"


def test_terrapi_clients_operations_each_take_one_line(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    tmp_path: Path,
) -> None:  # fmt: skip
    env = publish_env(tmp_path, oidc_provider)
    collection_id = "test-user.by-hand"
    collection_file = tmp_path / "collection.json"
    collection_file.write_bytes(orjson.dumps({**sample_catalog.files_of("joplin").collection(), "id": collection_id}))
    item = next(sample_catalog.files_of("joplin").items())
    item_file = tmp_path / "item.json"
    item_file.write_bytes(orjson.dumps(item))

    def run(*args: str) -> tuple[int, str, str]:
        result = subprocess.run([sys.executable, str(PUBLISH), "--url", auth_proxy.url, *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
        return result.returncode, result.stdout.strip(), result.stderr.strip()

    assert run("create-collection", str(collection_file)) == (0, f"created collection {collection_id}", "")
    assert run("create-item", collection_id, str(item_file)) == (0, f"created item {collection_id}/{item['id']}", "")
    assert list(held_items(api, collection_id)) == [item["id"]]
    assert run("delete-item", collection_id, item["id"]) == (0, f"deleted item {collection_id}/{item['id']}", "")
    assert held_items(api, collection_id) == {}
    assert run("delete-collection", collection_id) == (
        1,
        "",
        "error: no terminal to ask for confirmation on: pass --yes",
    )
    assert api.collection(collection_id) is not None
    assert run("delete-collection", collection_id, "--yes") == (0, f"deleted collection {collection_id}", "")
    assert api.collection(collection_id) is None
    assert run("create-item", "someone-else.x", str(item_file))[0:2] == (1, "")


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_the_tables_the_main_job_loaded_publish_back_as_the_items_they_were(
    pgstac_server: Any, auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions,
    sample_catalog: CatalogFolder, tmp_path: Path, destination: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    collections = ["joplin", "io-lulc"]
    into = destination_environment(destination, request) or {}
    loaded = run_main_job(tmp_path, "--url", pgstac_server.url, "--collections", *collections, "--destination",
                          destination, env=into)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    env = {**publish_env(tmp_path, oidc_provider), **into}
    pipeline_name = "terrabyte" if destination == "duckdb" else f"terrabyte_{destination}"

    published = run_publish(tmp_path, env, auth_proxy.url, "--collection-prefix", f"test-user.{destination}-",
                            f"pipeline:{pipeline_name}")  # fmt: skip

    assert published.returncode == 0, published.stderr[-3000:]
    for name in collections:
        items = list(sample_catalog.files_of(name).items())
        collection_id = f"test-user.{destination}-{name}"
        assert summary_of(published, collection_id) == summary(collection_id, "created", created=len(items))
        held = held_items(api, collection_id)
        assert {item_id: as_served({**item, "collection": name}) for item_id, item in held.items()} == {
            item["id"]: as_served(item) for item in items
        }
    again = run_publish(tmp_path, env, auth_proxy.url, "--collection-prefix", f"test-user.{destination}-",
                        f"pipeline:{pipeline_name}")  # fmt: skip
    assert "updated 0, unchanged 30" in summary_of(again, f"test-user.{destination}-joplin")


def test_a_stac_geoparquet_file_publishes_into_its_collection_which_must_exist(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions, sample_catalog: CatalogFolder,
    tmp_path: Path,
) -> None:  # fmt: skip
    rustac = pytest.importorskip("rustac")
    collection_id = "team-box.from-parquet"
    items = [{**item, "collection": collection_id} for item in sample_catalog.files_of("joplin").items()]
    parquet = tmp_path / "joplin.parquet"

    async def write() -> None:  # rustac's write wants a running event loop
        await rustac.write(str(parquet), items)

    asyncio.run(write())
    env = publish_env(tmp_path, oidc_provider, PUBLISH__LISTING_PAGE_SIZE="7")

    missing = run_publish(tmp_path, env, auth_proxy.url, str(parquet))
    api.create_collection({**sample_catalog.files_of("joplin").collection(), "id": collection_id, "links": []})
    published = run_publish(tmp_path, env, auth_proxy.url, str(parquet))

    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == (
        f"error: {parquet} holds no collection document, and the API has no collection `{collection_id}`: create it "
        "first (publish_pipeline.py create-collection <collection.json>)"
    )
    assert published.returncode == 0, published.stderr[-3000:]
    assert summary_of(published, collection_id) == summary(collection_id, "unchanged (the source has none)", 30)
    assert set(held_items(api, collection_id)) == {item["id"] for item in items}


def test_the_stac_source_piped_into_the_stac_api_destination_copies_a_collection(
    pgstac_server: Any, auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, api: StacTransactions,
    sample_catalog: CatalogFolder, tmp_path: Path,
) -> None:  # fmt: skip
    copy = "test-user.piped-joplin"
    source = stac(url=pgstac_server.url, collections=["joplin"])
    source.collections.add_map(lambda row: {**row, "id": copy})
    source.items.add_map(lambda page: page.set_column(page.schema.get_field_index("collection"), "collection",
                                                      pa.array([copy] * page.num_rows)))  # fmt: skip
    refusals: list[Rejection] = []
    destination = stac_api(url=auth_proxy.url, credentials=credentials(oidc_provider), refusals=refusals)
    pipeline = dlt.pipeline("piped", pipelines_dir=str(tmp_path / "pipelines"), destination=destination)

    pipeline.run(source.with_resources("collections"))
    pipeline.run(source.with_resources("items"))

    assert refusals == []
    assert api.collection(copy) is not None
    assert {
        item_id: as_served({**item, "collection": "joplin"}) for item_id, item in held_items(api, copy).items()
    } == {item["id"]: as_served(item) for item in sample_catalog.files_of("joplin").items()}


def test_a_publish_through_a_faulty_connection_retries_and_ends_exact(
    pgstac_server: Any, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    collection_id = "faults.joplin"
    files = sample_catalog.files_of("joplin")
    items = [{**item, "collection": collection_id} for item in files.items()]
    folder = write_collection(tmp_path / "source", {**files.collection(), "id": collection_id}, items)
    faults = Faults(every=2, kinds=("status", "drop", "cut", "short"))
    env = {**os.environ, "DLT_PROJECT_DIR": str(PROJECT_ROOT), "DLT_DATA_DIR": str(tmp_path / "dlt"),
           "PUBLISH__BATCH_SIZE": "4", "PUBLISH__LISTING_PAGE_SIZE": "5"}  # fmt: skip

    with FaultProxy(pgstac_server.url, faults) as proxy:
        first = run_publish(tmp_path, env, proxy.url, str(folder))
        again = run_publish(tmp_path, env, proxy.url, str(folder))

    assert first.returncode == 0, first.stderr[-3000:]
    assert faults.faults_sent >= 10
    assert {(method, path.split("?")[0].rsplit("/", 1)[-1]) for method, path in faults.requests} >= {
        ("POST", "bulk_items"),
        ("GET", "items"),
        ("POST", "collections"),
    }
    plain = StacTransactions(pgstac_server.url, Anonymous(), 0, 0, 30)
    assert {item_id: publish_digest(item) for item_id, item in held_items(plain, collection_id).items()} == {
        item["id"]: publish_digest(item) for item in items
    }
    assert summary_of(again, collection_id) == summary(collection_id, "unchanged", unchanged=30)
    plain.delete_collection(collection_id)


@pytest.fixture(scope="module")
def write_refusing_proxy(
    stack_workdir: Path, pgstac_server: Any, session_oidc_provider: OidcTestProvider
) -> Iterator[AuthProxy]:
    """stac-auth-proxy that lets the test user read, and refuses its writes (403): a collection it may not write."""
    with AuthProxy(
        stack_workdir, pgstac_server.url, session_oidc_provider.discovery_url, writes_need_scope=True
    ) as proxy:
        yield proxy


def test_a_collection_the_api_refuses_to_write_is_named_with_the_rule_and_the_others_go_on(
    write_refusing_proxy: AuthProxy, oidc_provider: OidcTestProvider, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    renamed_sample(source, sample_catalog, "test-user.refused-")

    result = run_publish(tmp_path, publish_env(tmp_path, oidc_provider), write_refusing_proxy.url, str(source))

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: The STAC API refused to write collection `test-user.refused-{name}` (HTTP 403 at "
        f"{write_refusing_proxy.url}/collections): Insufficient permissions. Required scopes: stac:write. On "
        "terrabyte you may write only collections "
        "whose id starts with your user name or a DSS container of yours and a dot; check the collection id, or ask "
        "the container's managers for write access."
        for name in sorted(ACCEPTED_COLLECTIONS)
    ]
