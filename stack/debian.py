"""Debian packages the stack needs (PostgreSQL with PostGIS, Chromium), installed with apt-get where they are
missing and this process may (as root, on Debian)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class PackagesMissing(RuntimeError):
    """Debian packages the stack needs are not installed, and cannot be installed from here."""


def apt_install(packages: tuple[str, ...]) -> None:
    """Installs `packages` with apt-get; raises `PackagesMissing` where that is not possible here."""
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists() or not shutil.which("apt-get"):
        raise PackagesMissing(f"not installed here: on Debian, as root, apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
    except subprocess.CalledProcessError as failed:
        raise PackagesMissing(f"`{' '.join(failed.cmd)}` failed with exit code {failed.returncode}") from None
