"""Debian's Chromium, which the dashboard's test drives with playwright (no browser download: playwright's own
builds come from a host this machine may not reach)."""

from __future__ import annotations

from pathlib import Path

from stack.debian import PackagesMissing, apt_install

CHROMIUM = Path("/usr/bin/chromium")
DEBIAN_PACKAGES = ("chromium",)
HEADLESS_FLAGS = (
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--no-first-run",
    # no connections to Google's hosts, which a closed network refuses, many at a time
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)


def ensure_chromium_installed() -> Path:
    """Installs Chromium with apt-get when missing, if that is possible here; raises `PackagesMissing`."""
    if not CHROMIUM.exists():
        apt_install(DEBIAN_PACKAGES)
    if not CHROMIUM.exists():
        raise PackagesMissing(f"Chromium is not at {CHROMIUM} after apt-get install {' '.join(DEBIAN_PACKAGES)}")
    return CHROMIUM
