"""terrapi's refresh-token cache, shared with terrapi so that one login serves both tools.

`refresh-tokens.json` in terrapi's user data folder, private to the user (mode 0600), laid out as
`{"<scheme://host of the STAC API>": {"<client id>": {"date": "<RFC 3339>", "refresh_token": "<token>"}}}`.
When terrapi is installed, its own store says where the file is; reading and writing happen here either way,
because terrapi writes the file before it restricts its mode.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import TokenCacheNotPrivate, TokenCacheUnreadable

APP_FOLDER = "terrabyte_auth"
FILE_NAME = "refresh-tokens.json"


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

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_refresh_token(self, issuer: str, client_id: str) -> str | None:
        entry = self._clients(self._load(), issuer).get(client_id)
        token = entry.get("refresh_token") if isinstance(entry, dict) else None
        return token if isinstance(token, str) and token else None

    def set_refresh_token(self, issuer: str, client_id: str, refresh_token: str) -> None:
        data = self._load()
        date = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        data[issuer.rstrip("/")] = {
            **self._clients(data, issuer),
            client_id: {"date": date, "refresh_token": refresh_token},
        }
        self._write(data)

    @staticmethod
    def _clients(data: dict[str, Any], issuer: str) -> dict[str, Any]:
        clients = data.get(issuer.rstrip("/"))
        return clients if isinstance(clients, dict) else {}

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenCacheNotPrivate(str(self.path), mode)
        try:
            data = json.loads(self.path.read_text(encoding="utf8") or "{}")
        except (ValueError, OSError) as error:
            raise TokenCacheUnreadable(str(self.path), type(error).__name__) from None
        if not isinstance(data, dict):
            raise TokenCacheUnreadable(str(self.path), "not a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        """Writes a private temporary file beside the cache and renames it over the cache: never a moment when the
        token is readable by others or the file half written."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(descriptor, "w", encoding="utf8") as file:
                json.dump(data, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self.path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise


def cache_file_path() -> Path:
    """Where terrapi's own store keeps the file when terrapi is installed, else where terrapi would."""
    try:
        from terrapi.auth.config import RefreshTokenStore  # type: ignore[import-not-found]
    except ImportError:
        return data_folder() / FILE_NAME
    return Path(RefreshTokenStore().path)


class TokenCache:
    """The cached refresh token of one API and client."""

    def __init__(self, api_url: str, client_id: str, store: TokenCacheFile | None = None) -> None:
        self.key = cache_key(api_url)
        self.client_id = client_id
        self.store = store or TokenCacheFile(cache_file_path())

    def get(self) -> str | None:
        return self.store.get_refresh_token(self.key, self.client_id)

    def put(self, refresh_token: str) -> None:
        self.store.set_refresh_token(self.key, self.client_id, refresh_token)
