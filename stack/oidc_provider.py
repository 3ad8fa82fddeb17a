"""An OpenID Connect provider for the tests that speaks Keycloak's protocol, on 127.0.0.1 in a thread.

Discovery and JWKS under `/realms/test`, RS256 access tokens (`aud=account`, `exp`, `azp`, `sid`,
`preferred_username`, `groups`), refresh tokens as JWTs that expire (offline ones optionally not), the device
authorization endpoint, and the token endpoint with the device-code (PKCE S256 checked, `slow_down` when polled
too fast), refresh-token and client-credentials grants. Tests set lifetimes and rotation, approve or deny a
pending login, revoke sessions, and read what was issued. The signing key lives in the workdir, so a restart
keeps it (stac-auth-proxy caches the JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dlt_stac.auth.oidc import DEVICE_CODE_GRANT
from stack.local_http import LocalHttpServer, QuietJsonHandler

REALM = "/realms/test"
ENDPOINTS = f"{REALM}/protocol/openid-connect"
KEY_ID = "test-signing-key"
PUBLIC_CLIENT = "stac-dlt-public"
"""The public client (device login, refresh tokens), as terrabyte's realm has `de.lrz.terrabyte.stac`."""
SERVICE_CLIENT = ("stac-loader-service", "service-secret")
USER = "test-user"
USER_GROUPS = ("/dss/team-box", "/dss/archive-ro", "/dss/team-box-mgr")
"""A DSS container the user may write (`team-box.`), one it may only read, and a manager group (no prefix)."""


@dataclass
class ProviderSettings:
    access_token_lifetime_s: int = 300
    rotate_refresh_tokens: bool = False
    refresh_token_lifetime_s: int = 1800
    offline_tokens_expire: bool = True
    """Whether an offline token (scope `offline_access`) carries `exp`: Keycloak's do where the realm limits offline
    sessions (`Offline Session Max Limited`), and lack it otherwise."""
    device_code_lifetime_s: int = 600
    poll_interval_s: int = 1
    slow_down_polls: int = 0
    """Answer `slow_down` to this many device-code polls, however slow they are."""
    wrong_audience_tokens: int = 0
    """Issue this many access tokens for another audience (the API refuses them) before correct ones."""
    groups: tuple[str, ...] = USER_GROUPS
    """The `groups` claim of a user's access tokens (terrabyte's realm maps a user's DSS containers to it)."""


@dataclass
class DeviceLogin:
    user_code: str
    client_id: str
    scope: str
    code_challenge: str
    expires_at: float
    interval_s: float
    state: str = "pending"
    last_poll: float = 0.0


@dataclass
class Session:
    sid: str
    client_id: str
    subject: str
    scope: str
    active: bool = True


@dataclass
class Issued:
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    grants: Counter[str] = field(default_factory=Counter)
    poll_times: list[float] = field(default_factory=list)


def signing_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
        path.write_bytes(pem)
        path.chmod(0o600)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


class OAuthError(Exception):
    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(error)
        self.answer = {"error": error, "error_description": description}
        self.status = status


class OidcTestProvider:
    def __init__(self, workdir: Path) -> None:
        self.key = signing_key(workdir / "oidc-signing-key.pem")
        self.refresh_key = secrets.token_bytes(32)
        self.settings = ProviderSettings()
        self.issued = Issued()
        self.devices: dict[str, DeviceLogin] = {}
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.http = LocalHttpServer(_handler_for(self))

    @property
    def issuer(self) -> str:
        return f"{self.http.url}{REALM}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> None:
        self.http.start()

    def stop(self) -> None:
        self.http.stop()

    def reset(self) -> None:
        with self.lock:
            self.settings, self.issued = ProviderSettings(), Issued()
            self.devices.clear()
            self.sessions.clear()

    def decide(self, user_code: str, state: str) -> None:
        """Approves (`approved`) or denies (`denied`) the pending login with `user_code`."""
        with self.lock:
            device = next(device for device in self.devices.values() if device.user_code == user_code)
            device.state = state

    def revoke_sessions(self) -> None:
        with self.lock:
            for session in self.sessions.values():
                session.active = False

    def start_session(self, client_id: str = PUBLIC_CLIENT, scope: str = "openid offline_access") -> str:
        """A refresh token as if the user had logged in, for tests that start from one."""
        with self.lock:
            return self._new_session(client_id, USER, scope)["refresh_token"]

    def metadata(self) -> dict[str, Any]:
        base = self.issuer.replace(REALM, ENDPOINTS)
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/auth/device",
            "jwks_uri": f"{base}/certs",
            "grant_types_supported": ["refresh_token", "client_credentials", DEVICE_CODE_GRANT],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def device_authorization(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("code_challenge_method") != "S256" or not form.get("code_challenge"):
            raise OAuthError("invalid_request", "PKCE with S256 is required")
        device_code = secrets.token_urlsafe(32)
        user_code = f"{secrets.token_hex(2)}-{secrets.token_hex(2)}".upper()
        with self.lock:
            self.devices[device_code] = DeviceLogin(
                user_code, form["client_id"], form.get("scope", "openid"), form["code_challenge"],
                time.monotonic() + self.settings.device_code_lifetime_s, self.settings.poll_interval_s,
            )  # fmt: skip
        verification_uri = self.issuer.replace(REALM, f"{REALM}/device")
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": self.settings.device_code_lifetime_s,
            "interval": self.settings.poll_interval_s,
        }

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        with self.lock:
            self.issued.grants[grant] += 1
            if grant == DEVICE_CODE_GRANT:
                return self._device_code_grant(form)
            if grant == "refresh_token":
                return self._refresh_token_grant(form)
            if grant == "client_credentials":
                if (form.get("client_id"), form.get("client_secret")) != SERVICE_CLIENT:
                    raise OAuthError("unauthorized_client", "Invalid client or Invalid client credentials", 401)
                return self._tokens(form["client_id"], f"service-account-{form['client_id']}", "openid", None)
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant}")

    def _device_code_grant(self, form: dict[str, str]) -> dict[str, Any]:
        device = self.devices.get(form.get("device_code", ""))
        if device is None or device.client_id != form.get("client_id"):
            raise OAuthError("invalid_grant", "Device code not valid")
        now = time.monotonic()
        self.issued.poll_times.append(now)
        too_fast = now - device.last_poll < device.interval_s
        device.last_poll = now
        if now > device.expires_at:
            raise OAuthError("expired_token", "Device code is expired")
        if self.settings.slow_down_polls > 0 or too_fast:
            self.settings.slow_down_polls = max(0, self.settings.slow_down_polls - 1)
            device.interval_s += 5
            raise OAuthError("slow_down", "Slow down")
        if device.state == "pending":
            raise OAuthError("authorization_pending", "The authorization request is still pending")
        if device.state == "denied":
            raise OAuthError("access_denied", "The end user denied the authorization request")
        verifier = form.get("code_verifier", "").encode("ascii")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode("ascii")
        if challenge != device.code_challenge:
            raise OAuthError("invalid_grant", "PKCE verification failed")
        del self.devices[form["device_code"]]
        return self._new_session(device.client_id, USER, device.scope)

    def _refresh_token_grant(self, form: dict[str, str]) -> dict[str, Any]:
        refresh_token = form.get("refresh_token", "")
        session = self.sessions.get(refresh_token)
        if session is None or not session.active or session.client_id != form.get("client_id"):
            raise OAuthError("invalid_grant", "Token is not active")
        try:
            jwt.decode(refresh_token, self.refresh_key, algorithms=["HS256"], audience=self.issuer)
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "Token is not active") from None
        if self.settings.rotate_refresh_tokens:
            del self.sessions[refresh_token]
            refresh_token = self._new_refresh_token(session)
        return self._tokens(session.client_id, session.subject, session.scope, refresh_token, session.sid)

    def _new_session(self, client_id: str, subject: str, scope: str) -> dict[str, Any]:
        session = Session(str(uuid.uuid4()), client_id, subject, scope)
        return self._tokens(client_id, subject, scope, self._new_refresh_token(session), session.sid)

    def _new_refresh_token(self, session: Session) -> str:
        """A refresh token as Keycloak issues them: a JWT signed with a key of the realm's own (HS256 here), that
        clients cannot check but can read (terrapi reads its `exp`); `typ` Offline for scope `offline_access`."""
        offline = "offline_access" in session.scope.split()
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.issuer, "sub": session.subject, "typ": "Offline" if offline else "Refresh",
            "azp": session.client_id, "sid": session.sid, "scope": session.scope, "iat": now, "jti": str(uuid.uuid4()),
        }  # fmt: skip
        if not offline or self.settings.offline_tokens_expire:
            claims["exp"] = now + self.settings.refresh_token_lifetime_s
        refresh_token = jwt.encode(claims, self.refresh_key, algorithm="HS256")
        self.sessions[refresh_token] = session
        self.issued.refresh_tokens.append(refresh_token)
        return refresh_token

    def _tokens(self, client_id: str, subject: str, scope: str, refresh_token: str | None, sid: str = "") -> dict:
        now = int(time.time())
        audience = "account"
        if self.settings.wrong_audience_tokens > 0:
            self.settings.wrong_audience_tokens -= 1
            audience = "some-other-api"
        claims = {
            "iss": self.issuer, "sub": subject, "aud": audience, "azp": client_id, "typ": "Bearer",
            "iat": now, "exp": now + self.settings.access_token_lifetime_s, "scope": scope, "sid": sid,
            "jti": str(uuid.uuid4()), "preferred_username": subject,
        }  # fmt: skip
        if not subject.startswith("service-account-"):
            claims["groups"] = list(self.settings.groups)
        access_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})
        self.issued.access_tokens.append(access_token)
        answer = {"access_token": access_token, "token_type": "Bearer", "scope": scope,
                  "expires_in": self.settings.access_token_lifetime_s}  # fmt: skip
        return {**answer, "refresh_token": refresh_token} if refresh_token else answer


def _handler_for(provider: OidcTestProvider) -> type[QuietJsonHandler]:
    class Handler(QuietJsonHandler):
        def do_GET(self) -> None:
            if self.path == f"{REALM}/.well-known/openid-configuration":
                self.send_json(200, provider.metadata())
            elif self.path == f"{ENDPOINTS}/certs":
                self.send_json(200, provider.jwks())
            else:
                self.send_json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
            try:
                if self.path == f"{ENDPOINTS}/token":
                    self.send_json(200, provider.token(form))
                elif self.path == f"{ENDPOINTS}/auth/device":
                    self.send_json(200, provider.device_authorization(form))
                else:
                    self.send_json(404, {"error": "not_found"})
            except OAuthError as error:
                self.send_json(error.status, error.answer)

    return Handler
