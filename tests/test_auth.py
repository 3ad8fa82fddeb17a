"""Signing in: through stac-auth-proxy (real JWT checks) in front of pgstac, with tokens from the tests' OIDC
provider; the ways in, renewal during long runs, the token cache shared with terrapi, and clear refusals."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from dlt_stac import stac
from dlt_stac.auth import StacApiCredentials
from dlt_stac.auth.authorizers import RefreshTokenGrant, RenewingToken
from dlt_stac.auth.oidc import OidcProvider
from dlt_stac.auth.token_cache import TokenCacheFile, cache_key
from dlt_stac.errors import (
    AccessDenied,
    AuthenticationRequired,
    ClientCredentialsRejected,
    IdentityProviderNotConfigured,
    RefreshTokenRejected,
    StaticTokenRefused,
    TokenCacheNotPrivate,
)
from dlt_stac.server.stac_io import stac_api_io
from stack import CatalogFolder, PgstacServer
from stack.auth_proxy import AuthProxy
from stack.oidc_provider import PUBLIC_CLIENT, SERVICE_CLIENT, OidcTestProvider
from stack.recording_api import RecordingApi
from tests.stac_helpers import loaded_ids, query, rows_loaded

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "terrabyte_pipeline.py"


def assert_joplin_loaded_once(pipeline: dlt.Pipeline) -> None:
    assert loaded_ids(pipeline) == {"joplin": CatalogFolder().item_ids_by_collection()["joplin"]}
    assert rows_loaded(pipeline) == 30


def credentials(provider: OidcTestProvider, **secrets: str) -> StacApiCredentials:
    return StacApiCredentials(issuer=provider.issuer, **{"client_id": PUBLIC_CLIENT, **secrets})  # type: ignore[arg-type]


def refusals_logged_by(proxy: AuthProxy) -> int:
    """How many requests the proxy has answered 401 so far."""
    assert proxy.process is not None
    return proxy.process.log_file.read_text().count('HTTP/1.1" 401')


def strings_in_pipeline_folder(pipeline: dlt.Pipeline) -> bytes:
    return b"".join(path.read_bytes() for path in Path(pipeline.working_dir).rglob("*") if path.is_file())


def destination_text(pipeline: dlt.Pipeline) -> str:
    tables = [name for (name,) in query(pipeline, "SELECT table_name FROM information_schema.tables "
                                        f"WHERE table_schema = '{pipeline.dataset_name}'")]  # fmt: skip
    return "".join(str(query(pipeline, f"SELECT * FROM {{{table}}}")) for table in tables)


def test_a_long_load_renews_short_lived_tokens_before_they_expire_and_leaks_none(
    auth_proxy: AuthProxy,
    oidc_provider: OidcTestProvider,
    sample_catalog: CatalogFolder,
    duckdb_pipeline: dlt.Pipeline,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oidc_provider.settings.access_token_lifetime_s = 3
    monkeypatch.setenv("SOURCES__STAC__CREDENTIALS__ISSUER", oidc_provider.issuer)
    monkeypatch.setenv("SOURCES__STAC__CREDENTIALS__CLIENT_ID", PUBLIC_CLIENT)
    monkeypatch.setenv("SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN", oidc_provider.start_session())
    refusals_before = refusals_logged_by(auth_proxy)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger("dlt"), "handlers", [caplog.handler])  # dlt's logger does not propagate
    monkeypatch.setattr(logging.getLogger("dlt"), "level", logging.DEBUG)

    started = time.monotonic()
    collections = sorted(sample_catalog.item_ids_by_collection())  # not those other tests add to the server
    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=collections, page_size=3))  # credentials by dlt
    elapsed = time.monotonic() - started

    assert loaded_ids(duckdb_pipeline) == sample_catalog.item_ids_by_collection()
    assert query(duckdb_pipeline, "SELECT COUNT(*) FROM {items}") == [(1074,)]
    assert rows_loaded(duckdb_pipeline) == 1074
    renewals = oidc_provider.issued.grants["refresh_token"]
    assert renewals >= 3, f"the load ({elapsed:.1f} s) outlived several tokens"
    assert renewals >= int(elapsed / 3) + 1
    assert renewals <= int(elapsed / 1.25) + 2, "tokens of 3 s are renewed 1.75 s ahead, not on every request"
    assert refusals_logged_by(auth_proxy) == refusals_before, "every token was renewed before it expired"
    secrets = [*oidc_provider.issued.access_tokens, *oidc_provider.issued.refresh_tokens]
    folder, logs, tables = strings_in_pipeline_folder(duckdb_pipeline), caplog.text, destination_text(duckdb_pipeline)
    assert "dlt" in logs and "pystac_client" in logs and tables and folder
    for secret in secrets:
        assert secret.encode() not in folder and secret not in logs and secret not in tables


def test_a_refused_token_is_renewed_once_and_the_request_sent_again(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, duckdb_pipeline: dlt.Pipeline
) -> None:
    refresh_token = oidc_provider.start_session()
    oidc_provider.settings.wrong_audience_tokens = 1
    refusals_before = refusals_logged_by(auth_proxy)

    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=["joplin"],
                             credentials=credentials(oidc_provider, refresh_token=refresh_token)))  # fmt: skip

    assert_joplin_loaded_once(duckdb_pipeline)
    assert refusals_logged_by(auth_proxy) == refusals_before + 1
    assert oidc_provider.issued.grants["refresh_token"] == 2


def test_concurrent_requests_share_one_renewal(auth_proxy: AuthProxy, oidc_provider: OidcTestProvider) -> None:
    provider = OidcProvider(oidc_provider.issuer, PUBLIC_CLIENT)
    authorizer = RenewingToken(RefreshTokenGrant(provider, oidc_provider.start_session(), "test", None))
    io = stac_api_io(auth_proxy.url, authorizer, max_retries=0, backoff_factor=0, timeout_s=30)

    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: io.read_json(f"{auth_proxy.url}/collections"), range(16)))

    ids = [[collection["id"] for collection in page["collections"]] for page in pages]
    assert ids[0] and ids == [ids[0]] * 16, "every request was answered in full"
    assert oidc_provider.issued.grants["refresh_token"] == 1


def test_client_credentials_sign_in_a_service_account(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, duckdb_pipeline: dlt.Pipeline
) -> None:
    client_id, secret = SERVICE_CLIENT
    service = credentials(oidc_provider, client_id=client_id, client_secret=secret)
    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=["joplin"], credentials=service))

    assert_joplin_loaded_once(duckdb_pipeline)
    assert oidc_provider.issued.grants["client_credentials"] == 1

    with pytest.raises(ClientCredentialsRejected) as refused:
        stac(url=auth_proxy.url, credentials=credentials(oidc_provider, client_id=client_id, client_secret="wrong"))
    assert str(refused.value) == (
        f"The identity provider {oidc_provider.issuer} rejected the client credentials of `{client_id}` "
        "(unauthorized_client: Invalid client or Invalid client credentials). Check `client_id` and `client_secret` "
        "under [sources.stac.credentials] in .dlt/secrets.toml."
    )


def test_a_static_access_token_is_sent_as_it_is_and_a_refused_one_is_explained(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, duckdb_pipeline: dlt.Pipeline
) -> None:
    oidc_provider.start_session()
    valid = oidc_provider.issued.access_tokens[-1]
    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=["joplin"],
                             credentials=credentials(oidc_provider, access_token=valid)))  # fmt: skip
    assert_joplin_loaded_once(duckdb_pipeline)
    assert oidc_provider.issued.grants["refresh_token"] == 0

    oidc_provider.settings.wrong_audience_tokens = 1
    oidc_provider.start_session()
    with pytest.raises(StaticTokenRefused) as refused:
        stac(
            url=auth_proxy.url,
            credentials=credentials(oidc_provider, access_token=oidc_provider.issued.access_tokens[-1]),
        )
    assert str(refused.value) == (
        f"The STAC API refused the configured `access_token` at {auth_proxy.url} (HTTP 401): it may have expired, "
        "and a static token cannot be renewed. Log in instead, or configure a refresh token under "
        "[sources.stac.credentials] `refresh_token` in .dlt/secrets.toml "
        "(env SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN)."
    )


def test_no_credentials_for_a_private_api_names_the_secret(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider
) -> None:
    with pytest.raises(AuthenticationRequired) as refused:
        stac(url=auth_proxy.url, credentials=credentials(oidc_provider))

    assert str(refused.value) == (
        f"The STAC API answered HTTP 401 at {auth_proxy.url}: it needs a login, and no credentials are configured. "
        "Log in (device login), or configure a refresh token under [sources.stac.credentials] `refresh_token` in "
        ".dlt/secrets.toml (env SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN)."
    )
    assert "pipelines/" not in str(refused.value)


def test_a_revoked_refresh_token_says_to_log_in_again(auth_proxy: AuthProxy, oidc_provider: OidcTestProvider) -> None:
    refresh_token = oidc_provider.start_session()
    oidc_provider.revoke_sessions()

    with pytest.raises(RefreshTokenRejected) as rejected:
        stac(url=auth_proxy.url, credentials=credentials(oidc_provider, refresh_token=refresh_token))

    assert str(rejected.value) == (
        f"The identity provider {oidc_provider.issuer} rejected the refresh token from the configured "
        "`refresh_token` (invalid_grant: Token is not active): it has expired or was revoked. Log in again and "
        "replace the configured `refresh_token` with the new one."
    )
    assert refresh_token not in str(rejected.value)


def test_a_refresh_token_without_its_identity_provider_is_refused_before_any_request() -> None:
    with pytest.raises(IdentityProviderNotConfigured) as refused:
        stac(url="http://127.0.0.1:1", credentials=StacApiCredentials(refresh_token="a-token"))  # type: ignore[arg-type]

    assert str(refused.value) == (
        "A `refresh_token` needs the OpenID Connect provider that issues the API's tokens: set `issuer` (its URL) "
        "and `client_id` under [sources.stac.credentials] in .dlt/secrets.toml."
    )


def test_a_fresh_token_refused_again_means_no_access(auth_proxy: AuthProxy, oidc_provider: OidcTestProvider) -> None:
    refresh_token = oidc_provider.start_session()
    oidc_provider.settings.wrong_audience_tokens = 2

    with pytest.raises(AccessDenied) as denied:
        stac(url=auth_proxy.url, credentials=credentials(oidc_provider, refresh_token=refresh_token))

    assert str(denied.value) == (
        f"The STAC API refused access at {auth_proxy.url} (HTTP 401) with a current access token: your account has "
        "no access to this API or collection. Check the URL and collection ids, or ask the API's operators for access."
    )


@pytest.fixture()
def search_scoped_proxy(
    tmp_path: Path, pgstac_server: PgstacServer, oidc_provider: OidcTestProvider
) -> Iterator[AuthProxy]:
    """A proxy where searching needs a scope that the provider never grants: 403 on /search."""
    with AuthProxy(tmp_path, pgstac_server.url, oidc_provider.discovery_url, search_needs_scope=True) as proxy:
        yield proxy


def test_a_forbidden_search_fails_before_anything_loads_with_a_clear_error(
    search_scoped_proxy: AuthProxy, oidc_provider: OidcTestProvider
) -> None:
    with pytest.raises(AccessDenied) as refused:  # opening the API probes how it sorts, with a search
        stac(url=search_scoped_proxy.url, collections=["joplin"],
             credentials=credentials(oidc_provider, refresh_token=oidc_provider.start_session()))  # fmt: skip

    refusal = f"The STAC API refused access at {search_scoped_proxy.url}/search (HTTP 403) with a current access token"
    assert refusal in str(refused.value)


def test_the_token_cache_is_read_and_a_rotated_token_written_back(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, private_token_cache: Path, duckdb_pipeline: dlt.Pipeline
) -> None:
    oidc_provider.settings.rotate_refresh_tokens = True
    cache = TokenCacheFile(private_token_cache)
    initial = oidc_provider.start_session()
    cache.set_refresh_token(cache_key(auth_proxy.url), PUBLIC_CLIENT, initial)
    cache.set_refresh_token("https://stac.example.org", PUBLIC_CLIENT, "another-api's-token")

    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=["joplin"], credentials=credentials(oidc_provider)))

    assert_joplin_loaded_once(duckdb_pipeline)
    latest = oidc_provider.issued.refresh_tokens[-1]
    assert latest != initial, "the provider rotated the refresh token"
    assert cache.get_refresh_token(cache_key(auth_proxy.url), PUBLIC_CLIENT) == latest
    assert cache.get_refresh_token("https://stac.example.org", PUBLIC_CLIENT) == "another-api's-token"
    assert stat.S_IMODE(private_token_cache.stat().st_mode) == 0o600


def test_a_token_cache_readable_by_others_is_refused(
    private_token_cache: Path, oidc_provider: OidcTestProvider
) -> None:
    TokenCacheFile(private_token_cache).set_refresh_token("http://127.0.0.1:1", PUBLIC_CLIENT, "secret")
    private_token_cache.chmod(0o644)

    with pytest.raises(TokenCacheNotPrivate) as refused:
        stac(url="http://127.0.0.1:1", credentials=credentials(oidc_provider))

    assert str(refused.value).startswith(
        f"The refresh token cache {private_token_cache} is readable by others (mode 644)"
    )


@pytest.fixture()
def api_with_a_foreign_next_link() -> Iterator[tuple[RecordingApi, RecordingApi]]:
    """An API whose first search page links to a page on another host (another port of 127.0.0.1)."""
    api, foreign = RecordingApi(), RecordingApi()
    api.start()
    foreign.start()
    item: dict[str, Any] = {"type": "Feature", "stac_version": "1.0.0", "collection": "c", "geometry": None}
    item |= {"links": [], "assets": {}, "properties": {"datetime": "2024-01-01T00:00:00Z"}}
    api.documents = {
        "/": {"type": "Catalog", "id": "api", "description": "", "stac_version": "1.0.0",
              "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
              "links": [{"rel": "search", "href": f"{api.url}/search", "type": "application/geo+json"}]},
        "/collections": {"collections": [{"id": "c", "type": "Collection", "links": []}], "links": []},
        "/search": {"type": "FeatureCollection", "features": [{**item, "id": "first"}],
                    "links": [{"rel": "next", "href": f"{foreign.url}/search?page=2", "method": "GET"}]},
    }  # fmt: skip
    foreign.documents = {"/search?page=2": {"type": "FeatureCollection", "features": [{**item, "id": "second"}]}}
    yield api, foreign
    api.stop()
    foreign.stop()


def test_the_token_goes_to_the_api_origin_only(
    api_with_a_foreign_next_link: tuple[RecordingApi, RecordingApi], duckdb_pipeline: dlt.Pipeline
) -> None:
    api, foreign = api_with_a_foreign_next_link

    duckdb_pipeline.run(stac(url=api.url, credentials=StacApiCredentials(access_token="static-secret")))

    assert loaded_ids(duckdb_pipeline) == {"c": {"first", "second"}}
    assert {header for _, _, header in api.received} == {"Bearer static-secret"}
    assert foreign.received == [("GET", "/search?page=2", None)]


def test_a_refusal_from_another_origin_says_the_token_was_withheld(
    api_with_a_foreign_next_link: tuple[RecordingApi, RecordingApi], duckdb_pipeline: dlt.Pipeline
) -> None:
    api, foreign = api_with_a_foreign_next_link
    foreign.documents = {"/search?page=2": (401, {"detail": "Not authenticated"})}

    with pytest.raises(PipelineStepFailed) as failed:
        duckdb_pipeline.run(stac(url=api.url, credentials=StacApiCredentials(access_token="static-secret")))

    assert (
        f"The STAC API at {api.url} links to {foreign.url}/search?page=2, on another origin, which answered HTTP 401."
        in str(failed.value)
    )
    assert "static-secret" not in str(failed.value)


@pytest.mark.parametrize("configured", ["nothing", "a revoked refresh token"])
def test_the_main_job_says_how_to_log_in(
    configured: str, auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path
) -> None:
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path)}
    if configured == "a revoked refresh token":
        env.update(
            SOURCES__STAC__CREDENTIALS__ISSUER=oidc_provider.issuer,
            SOURCES__STAC__CREDENTIALS__CLIENT_ID=PUBLIC_CLIENT,
            SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN=oidc_provider.start_session(),
        )
        oidc_provider.revoke_sessions()

    result = subprocess.run([sys.executable, str(PIPELINE), "--url", auth_proxy.url], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip

    assert result.returncode == 1
    *_, advice = result.stderr.strip().splitlines()
    if configured == "nothing":
        assert result.stderr.startswith(f"error: The STAC API answered HTTP 401 at {auth_proxy.url}: it needs a login")
        assert advice == (
            "To log in: run `python pipelines/terrabyte_pipeline.py login` once; runs on this machine then use the "
            "refresh token it keeps."
        )
    else:
        assert result.stderr.startswith(
            f"error: The identity provider {oidc_provider.issuer} rejected the refresh token from the configured "
            "`refresh_token` (invalid_grant: Token is not active)"
        )
        assert advice == (
            "To log in: run `python pipelines/terrabyte_pipeline.py login --show-refresh-token` and put the refresh "
            "token it prints into .dlt/secrets.toml in place of the old one."
        )
    assert "Traceback" not in result.stderr


def run_login(tmp_path: Path, provider: OidcTestProvider, api_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path)}
    env.update(SOURCES__STAC__CREDENTIALS__ISSUER=provider.issuer, SOURCES__STAC__CREDENTIALS__CLIENT_ID=PUBLIC_CLIENT)
    return subprocess.Popen([sys.executable, str(PIPELINE), "login", "--url", api_url, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def pending_user_code(provider: OidcTestProvider, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while not provider.devices:
        assert time.monotonic() < deadline, "login never asked for a device code"
        time.sleep(0.05)
    return next(iter(provider.devices.values())).user_code


def test_login_approved_stores_the_token_for_runs_and_terrapi(
    auth_proxy: AuthProxy,
    oidc_provider: OidcTestProvider,
    private_token_cache: Path,
    tmp_path: Path,
    duckdb_pipeline: dlt.Pipeline,
) -> None:
    login = run_login(tmp_path, oidc_provider, auth_proxy.url)
    user_code = pending_user_code(oidc_provider)
    oidc_provider.decide(user_code, "approved")
    out, err = login.communicate(timeout=60)

    assert login.returncode == 0, err
    refresh_token = oidc_provider.issued.refresh_tokens[-1]
    assert f"enter the code {user_code}" in out and f"user_code={user_code}" in out
    assert refresh_token not in out
    assert "Run login with --show-refresh-token to print it." in out.splitlines()
    assert stat.S_IMODE(private_token_cache.stat().st_mode) == 0o600
    cached = TokenCacheFile(private_token_cache).get_refresh_token(cache_key(auth_proxy.url), PUBLIC_CLIENT)
    assert cached == refresh_token
    duckdb_pipeline.run(stac(url=auth_proxy.url, collections=["joplin"], credentials=credentials(oidc_provider)))
    assert_joplin_loaded_once(duckdb_pipeline)


def test_login_prints_the_token_only_when_asked(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path
) -> None:
    login = run_login(tmp_path, oidc_provider, auth_proxy.url, "--show-refresh-token")
    oidc_provider.decide(pending_user_code(oidc_provider), "approved")
    out, err = login.communicate(timeout=60)

    assert login.returncode == 0, err
    assert f'    refresh_token = "{oidc_provider.issued.refresh_tokens[-1]}"' in out.splitlines()
    assert "Run login with --show-refresh-token to print it." not in out


def test_login_denied_in_the_browser(auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path) -> None:
    login = run_login(tmp_path, oidc_provider, auth_proxy.url)
    oidc_provider.decide(pending_user_code(oidc_provider), "denied")
    _, err = login.communicate(timeout=60)

    assert login.returncode == 1
    assert err == "error: Login failed: the login was denied in the browser. Run login again to retry.\n"


def test_login_not_approved_in_time(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path, private_token_cache: Path
) -> None:
    oidc_provider.settings.device_code_lifetime_s = 2
    login = run_login(tmp_path, oidc_provider, auth_proxy.url)
    user_code = pending_user_code(oidc_provider)
    _, err = login.communicate(timeout=60)

    assert login.returncode == 1
    assert err == (
        f"error: Login failed: the code {user_code} expired before it was approved. Run login again and approve it "
        "within 2 s.\n"
    )
    assert not private_token_cache.exists()


def test_login_polls_more_slowly_when_told_to(
    auth_proxy: AuthProxy, oidc_provider: OidcTestProvider, tmp_path: Path
) -> None:
    oidc_provider.settings.slow_down_polls = 1
    login = run_login(tmp_path, oidc_provider, auth_proxy.url)
    oidc_provider.decide(pending_user_code(oidc_provider), "approved")
    login.communicate(timeout=60)

    assert login.returncode == 0
    first, second = oidc_provider.issued.poll_times[:2]
    assert second - first >= 1 + 5, "after slow_down the interval grows by 5 s"
    assert oidc_provider.issued.grants["urn:ietf:params:oauth:grant-type:device_code"] == 2
