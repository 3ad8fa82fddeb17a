"""Errors that tell the user what went wrong, where, and what to do about it."""

from __future__ import annotations


class StacSourceError(Exception):
    """Base of every error this source raises on purpose."""


class StacApiUnreachable(StacSourceError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"Could not reach the STAC API at {url}: {reason}. Check the URL (it must be the API's landing page) "
            "and that the server is up."
        )


class NotAStacApi(StacSourceError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url} is not a STAC API landing page: {reason}. Point `url` at the API's root.")


class MissingConformance(StacSourceError):
    def __init__(self, url: str, capability: str, needed_for: str) -> None:
        super().__init__(f"The STAC API at {url} does not conform to {capability}, which {needed_for} needs.")


class ItemSearchNeeded(MissingConformance):
    def __init__(self, url: str, asked: str) -> None:
        StacSourceError.__init__(
            self,
            f"The STAC API at {url} has no item search: it offers only /collections/{{id}}/items, which takes one "
            f"collection's datetime, bbox and limit, and not {asked}.",
        )


class UnknownCollections(StacSourceError):
    def __init__(self, url: str, unknown: list[str], existing: list[str]) -> None:
        names = sorted(existing)
        shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
        super().__init__(
            f"Unknown collection(s) {', '.join(unknown)} at {url}. The API has: {shown or 'no collections'}."
        )


class InvalidSearch(StacSourceError):
    def __init__(self, search_name: str, reason: str) -> None:
        super().__init__(f"Search `{search_name}` has invalid parameters: {reason}")


class BadPage(StacSourceError):
    def __init__(self, page_url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"The STAC API sent a page that cannot be read at {page_url}: {reason}")
        self.status = status
        """The HTTP status the server answered, where it answered one."""


class MalformedItem(ValueError):
    """An item that cannot become a row; it goes to the `rejected_items` table instead."""


SECRETS_HINT = (
    "a refresh token under [sources.stac.credentials] `refresh_token` in .dlt/secrets.toml "
    "(env SOURCES__STAC__CREDENTIALS__REFRESH_TOKEN)"
)


class LoginNeeded(StacSourceError):
    """An error that a (new) login resolves: an app that can log in says how.

    `replaces_configured_token`: the login's refresh token must replace the one configured in secrets."""

    replaces_configured_token = False


class AuthenticationRequired(LoginNeeded):
    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"The STAC API answered HTTP {status} at {url}: it needs a login, and no credentials are configured. "
            f"Log in (device login), or configure {SECRETS_HINT}."
        )


class AccessDenied(StacSourceError):
    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"The STAC API refused access at {url} (HTTP {status}) with a current access token: your account has no "
            "access to this API or collection. Check the URL and collection ids, or ask the API's operators for access."
        )


class LinkToAnotherOriginRefused(StacSourceError):
    def __init__(self, url: str, api_url: str, status: int) -> None:
        super().__init__(
            f"The STAC API at {api_url} links to {url}, on another origin, which answered HTTP {status}. The access "
            "token goes to the API's own origin (scheme, host and port) only; if that link is the same API under "
            "another address, use that address as `url`."
        )


class StaticTokenRefused(LoginNeeded):
    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"The STAC API refused the configured `access_token` at {url} (HTTP {status}): it may have expired, and "
            f"a static token cannot be renewed. Log in instead, or configure {SECRETS_HINT}."
        )


class RefreshTokenRejected(LoginNeeded):
    def __init__(self, issuer: str, origin: str, description: str, configured: bool) -> None:
        what_to_do = (
            "Log in again and replace the configured `refresh_token` with the new one."
            if configured
            else "Log in again."
        )
        super().__init__(
            f"The identity provider {issuer} rejected the refresh token from {origin} (invalid_grant: {description}): "
            f"it has expired or was revoked. {what_to_do}"
        )
        self.replaces_configured_token = configured


class ClientCredentialsRejected(StacSourceError):
    def __init__(self, issuer: str, client_id: str, error: str, description: str) -> None:
        super().__init__(
            f"The identity provider {issuer} rejected the client credentials of `{client_id}` "
            f"({error}: {description}). Check `client_id` and `client_secret` under [sources.stac.credentials] in "
            ".dlt/secrets.toml."
        )


class IdentityProviderNotConfigured(StacSourceError):
    def __init__(self, way_in: str) -> None:
        super().__init__(
            f"{way_in} needs the OpenID Connect provider that issues the API's tokens: set `issuer` (its URL) and "
            "`client_id` under [sources.stac.credentials] in .dlt/secrets.toml."
        )


class IdentityProviderError(StacSourceError):
    def __init__(self, issuer: str, reason: str) -> None:
        super().__init__(
            f"Could not get a token from the identity provider {issuer}: {reason}. Check `issuer` under "
            "[sources.stac.credentials] and that the provider is reachable."
        )


class LoginFailed(StacSourceError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Login failed: {reason}")


class TokenCacheUnreadable(LoginNeeded):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"The refresh token cache {path} cannot be read ({reason}). Remove it and log in again.")


class TokenCacheNotPrivate(StacSourceError):
    def __init__(self, path: str, mode: int) -> None:
        super().__init__(
            f"The refresh token cache {path} is readable by others (mode {mode:o}); it must be private. "
            f"Run `chmod 600 {path}` and log in again, since others may have read the token."
        )
