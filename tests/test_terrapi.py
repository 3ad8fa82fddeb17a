"""One login shared both ways with terrabyte's own packages, terrapi and terrapi-client (the wheels of
../shared/terrapi, which `make test` installs), and items written by one tool read by the other: against pgstac behind
stac-auth-proxy, with the tests' OIDC provider issuing tokens as Keycloak does (refresh tokens as JWTs with `exp`,
which terrapi reads). terrapi takes its URLs from `TERRABYTE_*` environment variables when it is imported, so each
use of it runs in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dlt
import orjson
import pytest

from dlt_stac.auth.token_cache import TokenCache, cache_file_path
from stack import CatalogFolder
from stack.auth_proxy import AuthProxy
from stack.oidc_provider import PUBLIC_CLIENT, OidcTestProvider
from tests.stac_helpers import loaded_ids
from tests.test_auth import pending_user_code, run_login
from tests.test_main_pipeline import run_main_job
from tests.test_publish import publish_env, run_publish, write_collection

terrapi_store = pytest.importorskip(
    "terrapi.auth.config",
    reason="terrapi is not installed: the wheels of ../shared/terrapi are missing (see ../shared/terrapi/README.md)",
)
pytest.importorskip("terrapi.client.stac", reason="terrapi-client is not installed: no ../shared/terrapi wheels")


def terrapi_env(proxy: AuthProxy, provider: OidcTestProvider) -> dict[str, str]:
    return {
        **os.environ, "TERRABYTE_PRIVATE_API_URL": proxy.url, "TERRABYTE_AUTH_URL": f"{provider.issuer}/",
        "TERRABYTE_CLIENT_ID": PUBLIC_CLIENT,
    }  # fmt: skip


def terrapi_process(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def terrapi_run(code: str, env: dict[str, str]) -> str:
    """What the code, run with terrapi, prints; it must not ask for a login (no one would approve it)."""
    process = terrapi_process(code, env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


def main_job_env(provider: OidcTestProvider, **settings: str) -> dict[str, str]:
    """The main job signing in with the cached login only (no refresh token configured)."""
    credentials = {"ISSUER": provider.issuer, "CLIENT_ID": PUBLIC_CLIENT}
    return {**{f"SOURCES__STAC__CREDENTIALS__{key}": value for key, value in credentials.items()}, **settings}


def our_login(tmp_path: Path, provider: OidcTestProvider, url: str) -> None:
    login = run_login(tmp_path, provider, url)
    provider.decide(pending_user_code(provider), "approved")
    _, err = login.communicate(timeout=60)
    assert login.returncode == 0, err


SEARCH_JOPLIN = """
    from terrapi.client.stac import open_private_catalog
    print(sorted(item.id for item in open_private_catalog().search(collections=["joplin"]).items()))
"""


@pytest.mark.parametrize("offline_tokens_expire", [True, False])
def test_our_login_serves_terrapi_clients_search_without_a_second_login(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, sample_catalog: CatalogFolder, tmp_path: Path,
    offline_tokens_expire: bool,
) -> None:  # fmt: skip
    oidc_provider.settings.offline_tokens_expire = offline_tokens_expire
    our_login(tmp_path, oidc_provider, auth_proxy.url)
    logins = oidc_provider.issued.grants["urn:ietf:params:oauth:grant-type:device_code"]

    job = run_main_job(tmp_path, "--url", auth_proxy.url, "--collections", "joplin",
                       env=main_job_env(oidc_provider))  # fmt: skip

    assert job.returncode == 0, job.stderr[-3000:]
    assert "Rows loaded this run: collections 1, items 30" in job.stdout, (
        "our main job runs on the cached token, with or without exp"
    )
    if offline_tokens_expire:  # terrapi 1.0.8 reads the refresh token's `exp` and fails on one without it
        ids = terrapi_run(SEARCH_JOPLIN, terrapi_env(auth_proxy, oidc_provider))
        assert ids.strip() == str(sorted(sample_catalog.item_ids_by_collection()["joplin"]))
    assert oidc_provider.issued.grants["urn:ietf:params:oauth:grant-type:device_code"] == logins, "no second login"
    assert not oidc_provider.devices


def test_terrapis_own_device_login_serves_our_main_job(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path
) -> None:
    terrapi_login = terrapi_process(
        """
        import os, requests
        from terrapi.adapter import create_requests_adapter
        create_requests_adapter()(requests.Request("GET", os.environ["TERRABYTE_PRIVATE_API_URL"] + "/collections"))
        """,
        terrapi_env(auth_proxy, oidc_provider),
    )
    oidc_provider.decide(pending_user_code(oidc_provider, timeout_s=60), "approved")
    _, err = terrapi_login.communicate(timeout=120)
    assert terrapi_login.returncode == 0, err[-3000:]

    job = run_main_job(tmp_path, "--url", auth_proxy.url, "--collections", "joplin",
                       env=main_job_env(oidc_provider))  # fmt: skip

    assert job.returncode == 0, job.stderr[-3000:]
    assert "Rows loaded this run: collections 1, items 30" in job.stdout
    assert oidc_provider.issued.grants["urn:ietf:params:oauth:grant-type:device_code"] == 1


def test_our_token_cache_goes_through_terrapis_installed_store(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, private_token_cache: Path
) -> None:
    store = terrapi_store.RefreshTokenStore()
    refresh_token = oidc_provider.start_session()

    TokenCache(auth_proxy.url, PUBLIC_CLIENT).put(refresh_token)

    assert cache_file_path() == Path(store.path) == private_token_cache
    key = TokenCache(auth_proxy.url, PUBLIC_CLIENT).key
    assert store.get_refresh_token_not_expired(key, PUBLIC_CLIENT) == refresh_token
    store.set_refresh_token(key, PUBLIC_CLIENT, "written-by-terrapi")
    assert TokenCache(auth_proxy.url, PUBLIC_CLIENT).get() == "written-by-terrapi"


def test_items_written_by_either_tool_are_read_by_the_other_and_deletions_reach_our_tables(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, sample_catalog: CatalogFolder, tmp_path: Path
) -> None:
    our_login(tmp_path, oidc_provider, auth_proxy.url)
    env = terrapi_env(auth_proxy, oidc_provider)
    joplin = sample_catalog.files_of("joplin")
    items = list(joplin.items())
    (tmp_path / "collection.json").write_bytes(orjson.dumps({**joplin.collection(), "id": "test-user.interop-theirs"}))
    theirs = [{**item, "collection": "test-user.interop-theirs"} for item in items[:12]]
    (tmp_path / "items.json").write_bytes(orjson.dumps(theirs))
    terrapi_run(
        f"""
        import json, pystac
        from terrapi.client.stac import create_private_collection, create_private_item, open_private_catalog
        client = open_private_catalog()
        collection = pystac.Collection.from_file({str(tmp_path / "collection.json")!r})
        create_private_collection(client, collection)
        items = [pystac.Item.from_dict(item) for item in json.load(open({str(tmp_path / "items.json")!r}))]
        create_private_item(client, items[0], "test-user.interop-theirs")
        create_private_item(client, items[1:], "test-user.interop-theirs")
        """,
        env,
    )
    ours = "test-user.interop-ours"
    folder = write_collection(tmp_path / "source", {**joplin.collection(), "id": ours},
                              [{**item, "collection": ours} for item in items[12:]])  # fmt: skip
    published = run_publish(tmp_path, publish_env(tmp_path, oidc_provider), auth_proxy.url, str(folder))
    assert published.returncode == 0, published.stderr

    found = terrapi_run(
        f"""
        from terrapi.client.stac import open_private_catalog
        print(sorted(item.id for item in open_private_catalog().search(collections=[{ours!r}]).items()))
        """,
        env,
    )
    assert found.strip() == str(sorted(item["id"] for item in items[12:])), "terrapi-client finds what we published"

    settings = main_job_env(oidc_provider, SOURCES__STAC__COLLECTION_PREFIX="test-user.interop-")
    first = run_main_job(tmp_path, "--url", auth_proxy.url, env=settings)
    assert first.returncode == 0, first.stderr[-3000:]
    assert loaded(tmp_path) == {
        "test-user.interop-theirs": {item["id"] for item in items[:12]},
        ours: {item["id"] for item in items[12:]},
    }

    terrapi_run(
        """
        from terrapi.client.stac import delete_private_collection, open_private_catalog
        delete_private_collection(open_private_catalog(), "test-user.interop-theirs")
        """,
        env,
    )
    reconciled = run_main_job(tmp_path, "--url", auth_proxy.url, "--reconcile", env=settings)

    assert reconciled.returncode == 0, reconciled.stderr[-3000:]
    assert loaded(tmp_path) == {ours: {item["id"] for item in items[12:]}}


def loaded(workdir: Path) -> dict[str, set[str]]:
    pipeline = dlt.pipeline("terrabyte", destination=dlt.destinations.duckdb(str(workdir / "terrabyte.duckdb")),
                            dataset_name="terrabyte_stac", pipelines_dir=str(workdir / "check"))  # fmt: skip
    return loaded_ids(pipeline)
