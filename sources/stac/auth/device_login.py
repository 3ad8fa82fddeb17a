"""The OAuth2 device authorization grant (RFC 8628) with PKCE (RFC 7636, S256): log in on any browser while the
command waits, then keep the refresh token."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable

from ..errors import IdentityProviderError, LoginFailed
from .authorizers import identity_provider
from .credentials import StacApiCredentials
from .oidc import DeviceAuthorization, OidcProvider, TokenEndpointError, Tokens
from .token_cache import TokenCache

SLOW_DOWN_STEP_S = 5.0
"""RFC 8628 3.5: after `slow_down`, poll this much less often for the rest of the login."""


def pkce_pair() -> tuple[str, str]:
    """A random code verifier and its S256 code challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def device_login(
    provider: OidcProvider,
    scope: str,
    show: Callable[[DeviceAuthorization], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Tokens:
    """Starts a device authorization, lets `show` tell the user where to approve it, and polls until they do.

    Raises `LoginFailed` when the user denies it or the code expires first.
    """
    verifier, challenge = pkce_pair()
    authorization = provider.device_authorization(scope, challenge)
    show(authorization)
    interval = authorization.interval
    deadline = time.monotonic() + authorization.expires_in
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            return provider.device_token(authorization.device_code, verifier)
        except TokenEndpointError as error:
            if error.error == "authorization_pending":
                continue
            if error.error == "slow_down":
                interval += SLOW_DOWN_STEP_S
                continue
            if error.error == "access_denied":
                raise LoginFailed("the login was denied in the browser. Run login again to retry.") from None
            if error.error == "expired_token":
                break
            raise IdentityProviderError(provider.issuer, f"the token endpoint answered {error}") from None
    raise LoginFailed(
        f"the code {authorization.user_code} expired before it was approved. Run login again and approve it "
        f"within {authorization.expires_in:.0f} s."
    )


def login_and_cache(
    api_url: str, credentials: StacApiCredentials, show: Callable[[DeviceAuthorization], None]
) -> TokenCache:
    """The device login for `api_url`'s identity provider; its refresh token goes into the token cache that
    runs (and terrapi) read. Returns that cache."""
    provider = identity_provider(credentials, "A device login")
    tokens = device_login(provider, credentials.scope, show)
    if not tokens.refresh_token:
        raise LoginFailed(f"{provider.issuer} issued no refresh token; ask for the `offline_access` scope")
    cache = TokenCache(api_url, provider.client_id)
    cache.put(tokens.refresh_token)
    return cache
