"""stac-fastapi-geoparquet serving a catalog folder from stac-geoparquet files (`geoparquet_serve.py`)."""

from __future__ import annotations

from pathlib import Path

from stack.processes import FolderServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GEOPARQUET_VENV = PROJECT_ROOT / ".venv-geoparquet"
SERVE_SCRIPT = Path(__file__).with_name("geoparquet_serve.py")


class GeoparquetServer(FolderServer):
    """Writes each collection of the folder as a stac-geoparquet file and serves them.

    Known behaviour of stac-fastapi-geoparquet 0.0.7: it declares Sort but answers 500 to `properties.<name>` (it
    sorts on `<name>`); a search of several collections returns them one after another; a filter on a property
    that a collection's file has no column for matches nothing there; no Transactions.
    """

    name = "geoparquet"

    def command(self) -> list[str]:
        python = GEOPARQUET_VENV / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(
                f"{python} is missing: create it with `make .venv-geoparquet/.installed` (or `make test`)"
            )
        folders = [str(files.collection_json.parent) for files in self.data.collections]
        serve = [str(python), "-P", str(SERVE_SCRIPT), "--port", str(self.port), "--workdir", str(self.workdir)]
        return [*serve, *folders]
