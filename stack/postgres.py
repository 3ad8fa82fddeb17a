"""A throwaway PostgreSQL 15 + PostGIS cluster in a folder of its own, on 127.0.0.1 only.

It never touches the system's clusters. PostgreSQL refuses to run as root, so when the tests run
as root every server command runs as the `postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from functools import cache
from pathlib import Path

from stack.debian import PackagesMissing, apt_install
from stack.processes import free_port

POSTGRES_MAJOR = 15
DEBIAN_PACKAGES = (f"postgresql-{POSTGRES_MAJOR}", f"postgresql-{POSTGRES_MAJOR}-postgis-3")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
# A throwaway cluster trades durability for speed.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'256MB'",
    "max_connections": "200",
}


class PostgresMissing(PackagesMissing):
    """PostgreSQL or PostGIS is not installed where the stack looks for it."""


def _pg_config(bindir: Path, flag: str) -> Path:
    return Path(subprocess.run([bindir / "pg_config", flag], check=True, capture_output=True, text=True).stdout.strip())


@cache
def postgres_bindir() -> Path:
    """The bin folder of PostgreSQL 15 with PostGIS; raises `PostgresMissing` saying what to install."""
    debian_bindir = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")
    on_path = shutil.which("pg_config")
    bindir = debian_bindir if (debian_bindir / "initdb").exists() else None
    if bindir is None and on_path:
        bindir = _pg_config(Path(on_path).parent, "--bindir")
    install_hint = f"install them with: apt-get install {' '.join(DEBIAN_PACKAGES)}"
    if bindir is None or not (bindir / "initdb").exists():
        raise PostgresMissing(f"PostgreSQL {POSTGRES_MAJOR} server programs (initdb) not found; {install_hint}")
    if not (_pg_config(bindir, "--sharedir") / "extension" / "postgis.control").exists():
        raise PostgresMissing(f"PostGIS is not installed for the PostgreSQL in {bindir}; {install_hint}")
    return bindir


def ensure_postgres_installed() -> Path:
    """Installs PostgreSQL 15 + PostGIS with apt-get when missing, if that is possible here."""
    try:
        return postgres_bindir()
    except PostgresMissing as missing:
        try:
            apt_install(DEBIAN_PACKAGES)
        except PackagesMissing as not_installed:
            raise PostgresMissing(f"{missing} ({not_installed})") from None
    return postgres_bindir()


class PostgresCluster:
    """A cluster in `workdir/postgres`: `init()` once, then `start()` / `stop()`; `destroy()` removes it.

    When running as root, the `postgres` user must be able to reach `workdir` (see `make_workdir`).
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.home = Path(workdir) / "postgres"
        self.datadir = self.home / "data"
        self.log_file = self.home / "server.log"
        self.port = port or free_port()
        self._password_file = self.home / "password"

    @property
    def password(self) -> str:
        return self._password_file.read_text().strip()

    def init(self) -> None:
        """Creates the cluster with a random superuser password, listening on 127.0.0.1:`port`."""
        self.home.mkdir(parents=True)
        self._password_file.write_text(secrets.token_urlsafe(24))
        self._password_file.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.home, SYSTEM_USER)
            shutil.chown(self._password_file, SYSTEM_USER)
        self._run_as_owner(
            "initdb", "-D", str(self.datadir), "-U", SUPERUSER, f"--pwfile={self._password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        settings = {**SERVER_SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.home}'"}
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run_as_owner("pg_ctl", "-D", str(self.datadir), "-l", str(self.log_file), "-w", "start")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run_as_owner("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def libpq_env(self, database: str) -> dict[str, str]:
        """The PG* variables that libpq clients (psycopg, asyncpg, pypgstac) read."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": self.password,
            "PGDATABASE": database,
        }

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self._run_as_owner("createdb", "-h", str(self.home), "-p", str(self.port), "-U", SUPERUSER, name)

    def _run_as_owner(self, program: str, *args: str) -> None:
        command = [str(postgres_bindir() / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=self.home)
        if completed.returncode != 0:
            raise RuntimeError(f"{program} failed ({completed.returncode}): {completed.stderr.strip()}")
