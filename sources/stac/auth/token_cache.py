"""terrapi's refresh-token cache, shared with terrapi so that one login serves both tools.

`refresh-tokens.json` in terrapi's user data folder, private to the user (mode 0600), laid out as
`{"<scheme://host of the STAC API>": {"<client id>": {"date": "<RFC 3339>", "refresh_token": "<token>"}}}`.
Through terrapi's own store when terrapi is installed, else read and written here the same way.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sources.stac.errors import TokenCacheNotPrivate

APP_FOLDER = "terrabyte_auth"
FILE_NAME = "refresh-tokens.json"


class RefreshTokenStore(Protocol):
    @property
    def path(self) -> Path: ...

    def get_refresh_token(self, issuer: str, client_id: str) -> str | None: ...

    def set_refresh_token(self, issuer: str, client_id: str, refresh_token: str) -> None: ...


def cache_key(api_url: str) -> str:
    """terrapi's key of an API: its scheme and host (with the port, if any)."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}"


def data_folder_candidates() -> list[Path]:
    """Where terrapi looks, best first: `$OPENEO_CONFIG_HOME`, `$XDG_DATA_HOME/terrabyte_auth`,
    `~/.local/share/terrabyte_auth`."""
    folders = [Path(os.environ["OPENEO_CONFIG_HOME"])] if os.environ.get("OPENEO_CONFIG_HOME") else []
    if os.environ.get("XDG_DATA_HOME"):
        folders.append(Path(os.environ["XDG_DATA_HOME"]) / APP_FOLDER)
    folders.append(Path("~/.local/share").expanduser() / APP_FOLDER)
    return folders


def data_folder() -> Path:
    """The first candidate that exists, as terrapi picks it; else the first one, to be created."""
    candidates = data_folder_candidates()
    return next((folder for folder in candidates if folder.is_dir()), candidates[0])


class TokenCacheFile:
    """The cache file read and written as terrapi does, written atomically and never readable by others."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_folder() / FILE_NAME

    def get_refresh_token(self, issuer: str, client_id: str) -> str | None:
        entry = self._load().get(issuer.rstrip("/"), {}).get(client_id, {})
        token = entry.get("refresh_token") if isinstance(entry, dict) else None
        return token if isinstance(token, str) and token else None

    def set_refresh_token(self, issuer: str, client_id: str, refresh_token: str) -> None:
        data = self._load()
        date = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        data.setdefault(issuer.rstrip("/"), {})[client_id] = {"date": date, "refresh_token": refresh_token}
        self._write(data)

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenCacheNotPrivate(str(self.path), mode)
        data = json.loads(self.path.read_text(encoding="utf8") or "{}")
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf8") as file:
            json.dump(data, file, indent=2)
        os.replace(partial, self.path)


def token_store() -> RefreshTokenStore:
    """terrapi's own store when terrapi is installed, else the file handled here."""
    try:
        from terrapi.auth.config import RefreshTokenStore as TerrapiStore  # type: ignore[import-not-found]
    except ImportError:
        return TokenCacheFile()
    return TerrapiStore()  # type: ignore[no-any-return]


class TokenCache:
    """The cached refresh token of one API and client."""

    def __init__(self, api_url: str, client_id: str, store: RefreshTokenStore | None = None) -> None:
        self.key = cache_key(api_url)
        self.client_id = client_id
        self.store = store or token_store()

    def get(self) -> str | None:
        return self.store.get_refresh_token(self.key, self.client_id)

    def put(self, refresh_token: str) -> None:
        self.store.set_refresh_token(self.key, self.client_id, refresh_token)
