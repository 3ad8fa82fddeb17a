"""Session-wide local STAC API servers, each on its own port, stopped when the session ends.

Every test that uses one of them (or a database of the pgstac server's cluster) is marked `servers`, so that
`pytest -m "not servers"` runs the fast layer alone; a test that starts servers itself is marked by hand.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import dlt
import pytest

from stack import CatalogFolder, GeoparquetServer, PgstacServer, RustacServer
from stack.auth_proxy import AuthProxy
from stack.oidc_provider import OidcTestProvider
from stack.processes import FolderServer, make_workdir

SERVER_FIXTURES = frozenset({"pgstac_server", "rustac_server", "geoparquet_server", "auth_proxy", "postgres_database"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(fixtures_used(item)):
            item.add_marker(pytest.mark.servers)


def fixtures_used(item: pytest.Item) -> set[str]:
    """The fixtures a test asks for, and those a parametrized test names to get with `request.getfixturevalue`."""
    callspec = getattr(item, "callspec", None)
    named = {value for value in callspec.params.values() if isinstance(value, str)} if callspec else set()
    return set(getattr(item, "fixturenames", ())) | named


@pytest.fixture(scope="session")
def sample_catalog() -> CatalogFolder:
    """The sample collections and items in tests/data/stac."""
    return CatalogFolder()


@pytest.fixture(scope="session")
def stack_workdir() -> Iterator[Path]:
    """A folder directly under the system temp folder, which the `postgres` user can reach when we run as root."""
    workdir = make_workdir("stac-dlt-tests-")
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pgstac_server(stack_workdir: Path, sample_catalog: CatalogFolder) -> Iterator[PgstacServer]:
    """stac-fastapi-pgstac serving the sample data, on a throwaway PostgreSQL + PostGIS cluster, filtering on
    `updated` as a timestamp (the sample items carry none: they load by `datetime`)."""
    server = PgstacServer(stack_workdir / "pgstac", sample_catalog)
    server.workdir.mkdir()
    server.start()
    server.add_timestamp_queryable("updated")  # as a catalog whose items carry `updated` configures pgstac
    yield server
    server.stop()


ServerT = TypeVar("ServerT", bound=FolderServer)


def serving(server: ServerT) -> Iterator[ServerT]:
    """A folder server started in a new workdir for the session, stopped after it."""
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rustac_server(stack_workdir: Path, sample_catalog: CatalogFolder) -> Iterator[RustacServer]:
    """rustac's in-memory server with the sample data."""
    yield from serving(RustacServer(stack_workdir / "rustac", sample_catalog))


@pytest.fixture(scope="session")
def geoparquet_server(stack_workdir: Path, sample_catalog: CatalogFolder) -> Iterator[GeoparquetServer]:
    """stac-fastapi-geoparquet with the sample data."""
    yield from serving(GeoparquetServer(stack_workdir / "geoparquet", sample_catalog))


@pytest.fixture(autouse=True)
def private_token_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """terrapi's token cache in the test's temp folder, never the user's own."""
    monkeypatch.delenv("OPENEO_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    folder = tmp_path / "xdg-data" / "terrabyte_auth"
    folder.mkdir(parents=True)  # terrapi takes the first folder that exists, so this one must
    return folder / "refresh-tokens.json"


@pytest.fixture(scope="session")
def session_oidc_provider(stack_workdir: Path) -> Iterator[OidcTestProvider]:
    provider = OidcTestProvider(stack_workdir)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture()
def oidc_provider(session_oidc_provider: OidcTestProvider) -> OidcTestProvider:
    """The tests' OpenID Connect provider, with default settings and nothing issued yet."""
    session_oidc_provider.reset()
    return session_oidc_provider


@pytest.fixture(scope="session")
def auth_proxy(
    stack_workdir: Path, pgstac_server: PgstacServer, session_oidc_provider: OidcTestProvider
) -> Iterator[AuthProxy]:
    """stac-auth-proxy in front of the pgstac server: every endpoint needs a valid token from the provider."""
    proxy = AuthProxy(stack_workdir, pgstac_server.url, session_oidc_provider.discovery_url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture()
def postgres_database(pgstac_server: PgstacServer, request: pytest.FixtureRequest) -> str:
    """A fresh database in the pgstac server's cluster, as a postgresql:// URL, for destination tests."""
    name = f"dest_{request.node.name.lower()}"[:63]
    name = "".join(char if char.isalnum() else "_" for char in name)
    pgstac_server.cluster.create_database(name)
    return pgstac_server.cluster.url(name)


@pytest.fixture()
def duckdb_pipeline(tmp_path: Path) -> dlt.Pipeline:
    """A pipeline of its own, state and DuckDB file in the test's temp folder."""
    return dlt.pipeline(
        pipeline_name="stac_test",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "stac.duckdb")),
        dataset_name="stac_data",
    )


@pytest.fixture()
def postgres_pipeline(tmp_path: Path, postgres_database: str) -> dlt.Pipeline:
    """A pipeline loading into a fresh database of the throwaway cluster."""
    return dlt.pipeline(
        pipeline_name="stac_test_pg",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.postgres(postgres_database),
        dataset_name="stac_data",
    )
