"""Which token a request to the STAC API carries, when it is renewed, and what a refusal means.

`authorizer_for` picks the way in from the credentials (see `StacApiCredentials` for the order).
The transport (`transport.py`) asks the authorizer for a token per request and once more after a 401.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import (
    AccessDenied,
    AuthenticationRequired,
    ClientCredentialsRejected,
    IdentityProviderError,
    IdentityProviderNotConfigured,
    RefreshTokenRejected,
    StacSourceError,
    StaticTokenRefused,
)
from .credentials import StacApiCredentials
from .oidc import OidcProvider, TokenEndpointError, Tokens
from .token_cache import TokenCache

logger = logging.getLogger(__name__)

RENEWAL_LEAD_MAX_S = 60.0
"""A token is renewed when a quarter of its lifetime is left, but at most this many seconds before it expires."""
CLAIM_RESOLUTION_S = 1.0
"""`iat` and `exp` are whole seconds, so a token may expire up to this much before its lifetime says."""


class Authorizer(Protocol):
    def bearer_token(self) -> str | None:
        """The access token for the next request, or None to send none."""

    def renewed_after_refusal(self, refused: str) -> str | None:
        """A new token after the API refused `refused` with a 401, or None if there is none to try."""

    def refusal(self, url: str, status: int) -> StacSourceError:
        """The error that explains a 401 or 403 that remained after renewing."""


class Anonymous:
    def bearer_token(self) -> str | None:
        return None

    def renewed_after_refusal(self, refused: str) -> str | None:
        return None

    def refusal(self, url: str, status: int) -> StacSourceError:
        return AuthenticationRequired(url, status)


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token

    def bearer_token(self) -> str | None:
        return self._token

    def renewed_after_refusal(self, refused: str) -> str | None:
        return None

    def refusal(self, url: str, status: int) -> StacSourceError:
        return StaticTokenRefused(url, status)


def token_lifetime_s(tokens: Tokens) -> float | None:
    """How long the access token is valid: `exp - iat` of the JWT (immune to clock skew), else `expires_in`."""
    import jwt  # here, not at the top: its imports (cryptography) take 80 ms, which a run without tokens saves

    try:
        claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    if isinstance(claims.get("exp"), (int, float)) and isinstance(claims.get("iat"), (int, float)):
        return float(claims["exp"] - claims["iat"])
    return tokens.expires_in


class RenewingToken:
    """Access tokens from a grant: fetched on first use, renewed ahead of expiry and after a 401.

    One lock makes concurrent requests share one renewal: whoever comes second finds the new token.
    """

    def __init__(self, grant: Callable[[], Tokens]) -> None:
        self._grant = grant
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def bearer_token(self) -> str | None:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._renew()
            return self._token

    def renewed_after_refusal(self, refused: str) -> str | None:
        with self._lock:
            if self._token == refused:
                self._renew()
            return self._token

    def refusal(self, url: str, status: int) -> StacSourceError:
        return AccessDenied(url, status)

    def _renew(self) -> None:
        received_at = time.monotonic()
        tokens = self._grant()
        lifetime = token_lifetime_s(tokens)
        self._token = tokens.access_token
        lead = min(RENEWAL_LEAD_MAX_S, lifetime / 4) + CLAIM_RESOLUTION_S if lifetime else 0.0
        self._renew_at = received_at + lifetime - lead if lifetime else float("inf")
        logger.info("got a new access token, valid for %s s", f"{lifetime:.0f}" if lifetime else "an unknown time")


class RefreshTokenGrant:
    """The refresh-token grant; a refresh token the provider rotates replaces the old one in memory and, when it
    came from the token cache, in the cache."""

    def __init__(self, provider: OidcProvider, refresh_token: str, origin: str, cache: TokenCache | None) -> None:
        self._provider = provider
        self._refresh_token = refresh_token
        self._origin = origin
        self._cache = cache

    def __call__(self) -> Tokens:
        try:
            tokens = self._provider.refresh(self._refresh_token)
        except TokenEndpointError as error:
            if error.error == "invalid_grant":
                configured = self._cache is None
                raise RefreshTokenRejected(self._provider.issuer, self._origin, error.description, configured) from None
            raise IdentityProviderError(self._provider.issuer, f"the token endpoint answered {error}") from None
        if tokens.refresh_token and tokens.refresh_token != self._refresh_token:
            self._refresh_token = tokens.refresh_token
            if self._cache is not None:
                self._cache.put(tokens.refresh_token)
            else:
                logger.warning(
                    "%s rotated the configured refresh token; if it revokes used ones, later runs will be refused: "
                    "use the token cache (`login`) instead of a configured `refresh_token`",
                    self._provider.issuer,
                )
        return tokens


class ClientCredentialsGrant:
    def __init__(self, provider: OidcProvider) -> None:
        self._provider = provider

    def __call__(self) -> Tokens:
        try:
            return self._provider.client_credentials()
        except TokenEndpointError as error:
            raise ClientCredentialsRejected(
                self._provider.issuer, self._provider.client_id, error.error, error.description
            ) from None


def authorizer_for(api_url: str, credentials: StacApiCredentials, timeout_s: float = 30.0) -> Authorizer:
    """The first way in that the credentials offer, in `StacApiCredentials`' order."""
    if credentials.refresh_token:
        provider = identity_provider(credentials, "A `refresh_token`", timeout_s)
        configured = RefreshTokenGrant(provider, credentials.refresh_token, "the configured `refresh_token`", None)
        return RenewingToken(configured)
    if credentials.client_secret:
        return RenewingToken(ClientCredentialsGrant(identity_provider(credentials, "A `client_secret`", timeout_s)))
    if credentials.access_token:
        return StaticToken(credentials.access_token)
    if credentials.use_token_cache and credentials.issuer and credentials.client_id:
        cache = TokenCache(api_url, credentials.client_id)
        cached = cache.get()
        if cached:
            provider = identity_provider(credentials, "A cached login", timeout_s)
            return RenewingToken(RefreshTokenGrant(provider, cached, f"the token cache ({cache.key})", cache))
    return Anonymous()


def identity_provider(credentials: StacApiCredentials, way_in: str, timeout_s: float = 30.0) -> OidcProvider:
    """The OpenID Connect provider of the credentials; `way_in` names what needs it, for the error if unset."""
    if not credentials.issuer or not credentials.client_id:
        raise IdentityProviderNotConfigured(way_in)
    return OidcProvider(credentials.issuer, credentials.client_id, credentials.client_secret, timeout_s)
