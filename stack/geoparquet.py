"""stac-fastapi-geoparquet serving a catalog folder from stac-geoparquet files (`geoparquet_serve.py`)."""

from __future__ import annotations

from pathlib import Path

from stack.catalog_folder import CatalogFolder
from stack.processes import ServerProcess, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GEOPARQUET_VENV = PROJECT_ROOT / ".venv-geoparquet"
SERVE_SCRIPT = Path(__file__).with_name("geoparquet_serve.py")


class GeoparquetServer:
    """`start()` writes each collection of the folder as a stac-geoparquet file and serves them; `stop()` ends it.

    Known behaviour of stac-fastapi-geoparquet 0.0.7: it declares Sort but answers 500 to `properties.<name>` (it
    sorts on `<name>`); a search of several collections returns them one after another; a filter on a property
    that a collection's file has no column for matches nothing there; no Transactions.
    """

    def __init__(self, workdir: Path, data: CatalogFolder, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.data = data
        self.port = port or free_port()
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        python = GEOPARQUET_VENV / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(
                f"{python} is missing: create it with `make .venv-geoparquet/.installed` (or `make test`)"
            )
        folders = [str(files.collection_json.parent) for files in self.data.collections]
        command = [str(python), "-P", str(SERVE_SCRIPT), "--port", str(self.port), "--workdir", str(self.workdir)]
        self.process = ServerProcess("stac-fastapi-geoparquet", [*command, *folders], self.workdir / "server.log", {})
        try:
            self.process.wait_until_ready(f"{self.url}/")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
