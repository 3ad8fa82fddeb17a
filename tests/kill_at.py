"""Runs the main job and kills it with SIGKILL, as `kill -9` does, at a named point of dlt's extract, normalize
or load step: the crash tests' way to stop a real process at exactly the moment they mean.

    KILL_AT=<point>[@<nth>] python tests/kill_at.py <arguments of pipelines/terrabyte_pipeline.py>
    KILL_AT=<point>[@<nth>] KILL_SCRIPT=pipelines/publish_pipeline.py python tests/kill_at.py <its arguments>

Points, each hooked into dlt 1.26 (`<files>` is a pattern of load job file names, such as `items.*.sql`):

    extract:write             dlt's writer took a table of items (the package is not committed)
    extract:committed         the extracted package is committed; the state on disk is not saved yet
    normalize:map             the package is being normalized
    normalize:committed       the normalized package is committed; the extracted one is not deleted yet
    load:start                the load step starts
    job:start:<files>         a load job starts
    job:committed:<files>     the destination committed a load job; dlt has not recorded it
    job:recorded:<files>      dlt recorded the job as done
    load:complete             the package's `_dlt_loads` row is written; dlt has not archived the package
    package:loaded            a package is loaded and archived (a later one is not extracted yet)
    publish:sent              the `stac_api` destination's write of a batch of items was answered

`@<nth>` kills at the nth time the point is reached (default the first). The hooks only watch: each calls
dlt's own method unchanged. The process writes `KILLED AT <point> <detail>` to stderr before it dies.
"""

from __future__ import annotations

import fnmatch
import os
import runpy
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlt.common.data_writers.buffered import BufferedDataWriter
from dlt.common.destination.client import RunnableLoadJob
from dlt.common.storages.load_package import PackageStorage
from dlt.common.storages.load_storage import LoadStorage
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.extract.extract import Extract
from dlt.load.load import Load
from dlt.normalize.normalize import Normalize

from dlt_stac.publish import StacTransactions

PIPELINE = Path(
    os.environ.get("KILL_SCRIPT") or Path(__file__).resolve().parents[1] / "pipelines" / "terrabyte_pipeline.py"
)

CHOSEN, _, NTH = os.environ["KILL_AT"].partition("@")
times_left = int(NTH or 1)


def reached(name: str, detail: str = "") -> None:
    """Kills this process at the chosen point: `name` itself, or `name:<files>` with `detail` matching `<files>`."""
    global times_left
    files = CHOSEN.removeprefix(f"{name}:") if CHOSEN.startswith(f"{name}:") else None
    if name == CHOSEN or (files is not None and fnmatch.fnmatch(detail, files)):
        times_left -= 1
        if times_left == 0:
            print(f"KILLED AT {name} {detail}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def around(owner: type, method: str, before: str | None, after: str | None, detail: Callable[..., str]) -> None:
    """Wraps `owner.method` so that the points `before` and `after` are reached around each call."""
    original = getattr(owner, method)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if before:
            reached(before, detail(*args, **kwargs))
        result = original(*args, **kwargs)
        if after:
            reached(after, detail(*args, **kwargs))
        return result

    setattr(owner, method, hooked)


def nothing(*_: Any, **__: Any) -> str:
    return ""


around(BufferedDataWriter, "write_data_item", None, "extract:write", nothing)
around(Extract, "commit_packages", None, "extract:committed", nothing)
around(Normalize, "spool_files", "normalize:map", None, nothing)
around(LoadStorage, "commit_new_load_package", None, "normalize:committed", nothing)
around(Load, "run", "load:start", None, nothing)
around(RunnableLoadJob, "run_managed", "job:start", None, lambda job, *_: job.file_name())
around(
    PackageStorage,
    "save_pending_transition",
    "job:committed",
    "job:recorded",
    lambda storage, load_id, file_name, *_: file_name,
)
around(SqlJobClientBase, "complete_load", None, "load:complete", nothing)
around(Load, "complete_package", None, "package:loaded", nothing)
around(StacTransactions, "upsert_items", None, "publish:sent", lambda writer, collection_id, items: collection_id)

if __name__ == "__main__":
    sys.argv = [str(PIPELINE), *sys.argv[1:]]
    sys.path.insert(0, str(PIPELINE.parent))  # as `python pipelines/terrabyte_pipeline.py` has it, for its neighbours
    runpy.run_path(str(PIPELINE), run_name="__main__")
