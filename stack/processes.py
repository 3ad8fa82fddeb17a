"""Starting, waiting for and stopping the stack's server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def make_workdir(prefix: str) -> Path:
    """A new folder under the system temp folder that other users (the `postgres` user) can reach."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)
    return workdir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def log_tail(log_file: Path, lines: int = 30) -> str:
    if not log_file.exists():
        return "(no log)"
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an exited child that nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def terminate_process_group(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it if its leader still runs after `timeout_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not is_running(pid):
            return


class ServerProcess:
    """A server started in its own process group, logging to a file, with its pid in a pidfile.

    The process group lets `stop()` (or `python -m stack down` in another process) end the
    server together with any workers it forked.
    """

    def __init__(self, name: str, command: Sequence[str], log_file: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.log_file = log_file
        self.pidfile = log_file.with_suffix(".pid")
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                start_new_session=True,
            )
        self.pidfile.write_text(str(self.process.pid))

    def wait_until_ready(self, url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Polls `url` until it answers 200; raises with the server's log if it dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode} before answering {url}:\n"
                    f"{log_tail(self.log_file)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout_s:.0f} s:\n{log_tail(self.log_file)}")

    def stop(self) -> None:
        terminate_process_group(self.process.pid)
        self.process.wait()
        self.pidfile.unlink(missing_ok=True)


class FolderServer:
    """A STAC API server on 127.0.0.1 serving a catalog folder: `start()` runs `command()` until the landing page
    answers, `stop()` ends it. Subclasses say how the server is run."""

    name = "server"
    """The server's name in messages, and its log file's (`<workdir>/<name>.log`)."""

    def __init__(self, workdir: Path, data: Any, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.data = data
        """The `CatalogFolder` it serves."""
        self.port = port or free_port()
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.process = ServerProcess(self.name, self.command(), self.workdir / f"{self.name}.log", {})
        try:
            self.process.wait_until_ready(f"{self.url}/")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def stop_server_from_pidfile(pidfile: Path) -> None:
    """Stops a server that an earlier process started (the `down` half of `up`/`down`)."""
    if pidfile.exists():
        terminate_process_group(int(pidfile.read_text()))
        pidfile.unlink()
