"""An OpenID Connect provider as this source uses it: discovery, the token endpoint's grants and the device
authorization endpoint (RFC 8628), as Keycloak speaks them. Knows nothing about STAC.

Tokens only travel in request bodies to the provider's own endpoints and never appear in errors or logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import Retry

from ..errors import IdentityProviderError

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class Tokens:
    """A token endpoint's answer; `repr` shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: float | None


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


class TokenEndpointError(Exception):
    """The provider's OAuth2 error answer, e.g. `invalid_grant` or `authorization_pending`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


def _provider_session() -> requests.Session:
    """Retries connection failures and 502/503/504, but never re-sends a token request that may have been
    served: a refresh token that rotates would be spent twice."""
    session = requests.Session()
    retry = Retry(total=3, connect=3, read=0, status=3, status_forcelist=(502, 503, 504), allowed_methods=None,
                  backoff_factor=0.5, raise_on_status=False)  # fmt: skip
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


class OidcProvider:
    def __init__(self, issuer: str, client_id: str, client_secret: str | None = None, timeout_s: float = 30.0):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._timeout_s = timeout_s
        self._session = _provider_session()

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The provider's `.well-known/openid-configuration`, read once."""
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            response = self._session.get(url, timeout=self._timeout_s)
        except requests.RequestException as error:
            raise IdentityProviderError(self.issuer, f"{url} is unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            raise IdentityProviderError(self.issuer, f"{url} answered HTTP {response.status_code}")
        try:
            metadata = response.json()
        except ValueError:
            raise IdentityProviderError(self.issuer, f"{url} did not answer JSON") from None
        if not isinstance(metadata, dict) or "token_endpoint" not in metadata:
            raise IdentityProviderError(self.issuer, f"{url} names no token_endpoint")
        return metadata

    def refresh(self, refresh_token: str) -> Tokens:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def client_credentials(self) -> Tokens:
        return self._token_request({"grant_type": "client_credentials"})

    def device_token(self, device_code: str, code_verifier: str) -> Tokens:
        """One poll of a device authorization; raises `TokenEndpointError` while it is pending."""
        return self._token_request(
            {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "code_verifier": code_verifier}
        )

    def device_authorization(self, scope: str, code_challenge: str) -> DeviceAuthorization:
        endpoint = self.metadata.get("device_authorization_endpoint")
        if not endpoint:
            raise IdentityProviderError(self.issuer, "it offers no device authorization endpoint")
        form = {"scope": scope, "code_challenge": code_challenge, "code_challenge_method": "S256"}
        answer = self._post(endpoint, form)
        try:
            return DeviceAuthorization(
                device_code=answer["device_code"],
                user_code=answer["user_code"],
                verification_uri=answer["verification_uri"],
                verification_uri_complete=answer.get("verification_uri_complete"),
                expires_in=float(answer["expires_in"]),
                interval=float(answer.get("interval", 5)),
            )
        except (KeyError, TypeError, ValueError):
            raise IdentityProviderError(self.issuer, "its device authorization answer lacks fields") from None

    def _token_request(self, form: dict[str, str]) -> Tokens:
        answer = self._post(self.metadata["token_endpoint"], form)
        if not isinstance(answer.get("access_token"), str):
            raise IdentityProviderError(self.issuer, "its token answer has no access_token")
        expires_in = answer.get("expires_in")
        return Tokens(
            access_token=answer["access_token"],
            refresh_token=answer.get("refresh_token"),
            expires_in=float(expires_in) if isinstance(expires_in, (int, float)) else None,
        )

    def _post(self, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
        """POSTs `form` with the client's id (and secret); an OAuth2 error becomes a `TokenEndpointError`."""
        client = {"client_id": self.client_id}
        if self._client_secret:
            client["client_secret"] = self._client_secret
        try:
            response = self._session.post(endpoint, data={**client, **form}, timeout=self._timeout_s)
        except requests.RequestException as error:
            raise IdentityProviderError(self.issuer, f"{endpoint} is unreachable ({type(error).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise IdentityProviderError(self.issuer, f"{endpoint} answered HTTP {response.status_code} without JSON")
        if response.status_code != 200 or "error" in answer:
            raise TokenEndpointError(str(answer.get("error", response.status_code)),
                                     str(answer.get("error_description", ""))[:300])  # fmt: skip
        return answer
