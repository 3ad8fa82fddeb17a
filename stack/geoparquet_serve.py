"""Serves collection folders with stac-fastapi-geoparquet; run with `.venv-geoparquet/bin/python`, where it lives.

    .venv-geoparquet/bin/python -P stack/geoparquet_serve.py --port 8082 --workdir W <collection folder> ...

(`-P`: this folder is not put on `sys.path`, where `stack/rustac.py` would hide the `rustac` package.)

Each folder (`collection.json` + `items.ndjson[.gz]`) becomes a stac-geoparquet file written by rustac, listed
with its collection in `W/collections.json`. DuckDB's extensions come from the `duckdb-extension-*` wheels (its
extension host may be unreachable), put where DuckDB looks for them. Only the standard library and that
virtualenv's packages: the `stack` package's own imports are not installed there.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib
import json
from pathlib import Path
from typing import Any

import duckdb
import rustac
import uvicorn
from stac_fastapi.geoparquet.api import GEOPARQUET_MEDIA_TYPE, create
from stac_fastapi.geoparquet.settings import Settings

EXTENSIONS = ("spatial", "icu", "parquet")
PLATFORM = "linux_amd64"


def items_of(folder: Path) -> list[dict[str, Any]]:
    path = next(folder / name for name in ("items.ndjson.gz", "items.ndjson") if (folder / name).is_file())
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


async def written_collections(folders: list[Path], workdir: Path) -> list[dict[str, Any]]:
    collections = []
    for folder in folders:
        collection = json.loads((folder / "collection.json").read_text())
        parquet = workdir / f"{collection['id']}.parquet"
        await rustac.write(str(parquet), items_of(folder))
        collection["assets"] = {"data": {"href": str(parquet), "type": GEOPARQUET_MEDIA_TYPE}}
        collections.append(collection)
    return collections


def extension_directory(workdir: Path) -> Path:
    """A DuckDB extension directory holding the extensions of the `duckdb-extension-*` wheels."""
    version = f"v{duckdb.__version__}"
    directory = workdir / "duckdb-extensions"
    (directory / version / PLATFORM).mkdir(parents=True, exist_ok=True)
    for name in EXTENSIONS:
        package = Path(importlib.import_module(f"duckdb_extension_{name}").__file__ or "").parent
        target = directory / version / PLATFORM / f"{name}.duckdb_extension"
        if not target.exists():
            target.symlink_to(package / "extensions" / version / f"{name}.duckdb_extension")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args()
    collections_json = args.workdir / "collections.json"
    collections_json.write_text(json.dumps(asyncio.run(written_collections(args.folders, args.workdir))))
    settings = Settings(
        stac_fastapi_landing_id="local-geoparquet",
        stac_fastapi_title="Local STAC API (stac-fastapi-geoparquet)",
        stac_fastapi_description="Throwaway test server of the dlt STAC source",
        stac_fastapi_collections_href=str(collections_json),
    )
    client = rustac.DuckdbClient(extension_directory=extension_directory(args.workdir))
    uvicorn.run(create(settings, client).app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
