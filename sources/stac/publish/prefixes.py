"""terrabyte's rule for who may write which collection, read as terrapi reads it from the access token.

A user may write the collections whose id starts with their user name and a dot (`preferred_username` + `.`),
and those of each DSS container they belong to: a group `/dss/<container>` makes `<container>.` writable,
`/dss/<container>-ro` only readable; groups ending in `-mgr` grant nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

DSS_GROUP = "/dss/"
READ_ONLY_SUFFIX = "-ro"
MANAGER_SUFFIX = "-mgr"


@dataclass(frozen=True)
class CollectionPrefixes:
    writable: tuple[str, ...]
    read_only: tuple[str, ...]

    def refusal(self, collection_id: str) -> str | None:
        """Why the rule refuses writing `collection_id`, or None when it may be written."""
        if collection_id.startswith(self.writable):
            return None
        shown = ", ".join(f"`{prefix}`" for prefix in self.writable) or "none"
        readable = (
            " (its prefix is a read-only DSS container of yours)" if collection_id.startswith(self.read_only) else ""
        )
        return (
            f"collection `{collection_id}` is not yours to write{readable}: on terrabyte a private collection's id "
            "starts with your user name or a DSS container of yours and a dot; your writable prefixes are "
            f"{shown}. Publish it under such an id (`--collection <prefix><name>`)."
        )


def prefixes_of(claims: dict[str, Any]) -> CollectionPrefixes | None:
    """The prefixes the token's claims grant, or None for a token that says nothing of users or groups (an API
    outside terrabyte, or a service account): then the API alone decides."""
    user = claims.get("preferred_username")
    groups = [group for group in claims.get("groups") or [] if isinstance(group, str)]
    if not isinstance(user, str) and not groups:
        return None
    writable = [f"{user}."] if isinstance(user, str) and user else []
    read_only: list[str] = []
    for group in groups:
        if not group.startswith(DSS_GROUP) or group.endswith(MANAGER_SUFFIX):
            continue
        container = group[len(DSS_GROUP) :].strip("/")
        if container.endswith(READ_ONLY_SUFFIX):
            read_only.append(f"{container[: -len(READ_ONLY_SUFFIX)]}.")
        elif container:
            writable.append(f"{container}.")
    return CollectionPrefixes(tuple(writable), tuple(read_only))


def token_claims(access_token: str) -> dict[str, Any]:
    """The claims of an access token, unverified: the API verifies it; this only reads what it grants."""
    try:
        return jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
