"""stac-auth-proxy in front of a STAC API: every endpoint private, JWTs checked against an OIDC provider's keys."""

from __future__ import annotations

import json
from pathlib import Path

from stack.pgstac import server_venv_program
from stack.processes import ServerProcess, free_port

SEARCH_SCOPE = "stac:search"
"""A scope the tests' provider never grants: with `search_needs_scope`, searching is refused with 403."""
WRITE_SCOPE = "stac:write"
"""Another: with `writes_need_scope`, creating, replacing and deleting collections and items is refused with 403."""
WRITES = {"^/collections(/.*)?$": [["POST", WRITE_SCOPE], ["PUT", WRITE_SCOPE], ["DELETE", WRITE_SCOPE]]}


class AuthProxy:
    def __init__(
        self,
        workdir: Path,
        upstream_url: str,
        discovery_url: str,
        search_needs_scope: bool = False,
        writes_need_scope: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.upstream_url = upstream_url
        self.discovery_url = discovery_url
        self.search_needs_scope = search_needs_scope
        self.writes_need_scope = writes_need_scope
        self.port = free_port()
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # Its `python -m stac_auth_proxy` binds 0.0.0.0; uvicorn's factory form lets us bind loopback only.
        command = [
            str(server_venv_program("uvicorn")), "stac_auth_proxy.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        log_file = self.workdir / f"auth-proxy-{self.port}.log"
        self.process = ServerProcess("stac-auth-proxy", command, log_file, self._env())
        self.process.wait_until_ready(f"{self.url}/healthz")

    def __enter__(self) -> AuthProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def _env(self) -> dict[str, str]:
        private = {"^/search$": [["POST", SEARCH_SCOPE], ["GET", SEARCH_SCOPE]]} if self.search_needs_scope else {}
        private |= WRITES if self.writes_need_scope else {}
        return {
            "UPSTREAM_URL": self.upstream_url,
            "OIDC_DISCOVERY_URL": self.discovery_url,
            "ALLOWED_JWT_AUDIENCES": "account",
            "DEFAULT_PUBLIC": "false",
            "PUBLIC_ENDPOINTS": json.dumps({"^/healthz$": ["GET"]}),
            "PRIVATE_ENDPOINTS": json.dumps(private),
            "ENABLE_AUTHENTICATION_EXTENSION": "false",
        }
