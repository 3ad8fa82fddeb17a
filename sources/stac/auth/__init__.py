"""Signing in to a STAC API: credentials, OpenID Connect grants, the token cache shared with terrapi, and the
transport that puts the token on the API's own requests only."""

from .authorizers import Authorizer, authorizer_for
from .credentials import StacApiCredentials
from .transport import mount_bearer_adapter

__all__ = ["Authorizer", "StacApiCredentials", "authorizer_for", "mount_bearer_adapter"]
