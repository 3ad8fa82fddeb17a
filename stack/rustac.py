"""rustac's in-memory STAC API server (`rustac serve`), loaded from a catalog folder.

Light and quick to start, with no PostgreSQL. Known limits of rustac 0.9.18: it ignores `sortby`,
has no write routes, and its GET /search answers 500 when a next link is needed together with
`collections`, `bbox`, `sortby` or `ids` (POST /search and /collections/{id}/items page fine).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from stack.catalog_folder import CollectionFiles
from stack.processes import FolderServer


def rustac_program() -> Path:
    """`rustac` from the virtualenv running us (the `demo` extra), else from PATH."""
    beside_python = Path(sys.executable).with_name("rustac")
    found = beside_python if beside_python.exists() else shutil.which("rustac")
    if not found:
        raise FileNotFoundError("rustac is not installed: pip install 'rustac==0.9.18' (the project's `demo` extra)")
    return Path(found)


class RustacServer(FolderServer):
    """Serves the data folder's collections and items from memory."""

    name = "rustac"

    def command(self) -> list[str]:
        hrefs = []
        for files in self.data.collections:
            hrefs += [str(files.collection_json), str(self._plain_ndjson(files))]
        return [str(rustac_program()), "serve", "--addr", f"127.0.0.1:{self.port}", *hrefs]

    def _plain_ndjson(self, files: CollectionFiles) -> Path:
        """rustac reads no gzip, so items are written out uncompressed into the workdir."""
        if files.items_ndjson.suffix != ".gz":
            return files.items_ndjson
        plain = self.workdir / f"{files.collection_id}.items.ndjson"
        with files.open_items() as source, plain.open("w", encoding="utf-8") as target:
            shutil.copyfileobj(source, target)
        return plain
