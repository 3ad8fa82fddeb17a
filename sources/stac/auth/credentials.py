"""The credentials spec: how a run signs in, read from `.dlt/secrets.toml` and dlt's environment variables."""

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue


@configspec
class StacApiCredentials(CredentialsConfiguration):
    """Ways in, tried in this order:

    1. `refresh_token`: renewed access tokens from the OpenID Connect provider at `issuer`;
    2. `client_secret` (with `client_id`): the client-credentials grant, for service accounts;
    3. `access_token`: sent as it is, never renewed;
    4. the refresh token that `login` (or terrapi) cached for this API, unless `use_token_cache` is false;
    5. anonymous, for public APIs.

    The first, second and fourth need `issuer` (the OpenID Connect provider's URL) and `client_id`. The
    source knows no provider of its own: an app gives its defaults in a subclass, as the main job does with
    terrabyte's (`TerrabyteCredentials`).
    """

    issuer: str | None = None
    client_id: str | None = None
    scope: str = "openid offline_access"
    refresh_token: TSecretStrValue | None = None
    client_secret: TSecretStrValue | None = None
    access_token: TSecretStrValue | None = None
    use_token_cache: bool = True
