"""What a publish reads, one collection at a time: folders of STAC files, a stac-geoparquet file, or the tables the
`stac` source loaded into a dlt pipeline's destination."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import orjson

from ..errors import StacSourceError
from .files import collection_files_in
from .table_items import table_collection, table_collection_ids, table_items

PIPELINE_SCHEME = "pipeline:"
GEOPARQUET_METADATA_KEY = b"stac-geoparquet"


@dataclass(frozen=True)
class CollectionInput:
    """One collection of a source: its document (None where the source has none: it must exist in the API), and its
    items, read anew each time `items()` is called."""

    collection_id: str
    document: dict[str, Any] | None
    items: Callable[[], Iterator[Any]]
    where: str
    """Where it comes from, for messages."""


def inputs_of(source: str, page_size: int) -> list[CollectionInput]:
    """The collections of `source`: `pipeline:<name>` (the tables of that dlt pipeline), a `.parquet` file, or a
    folder; `page_size` rows read at a time from tables and files."""
    if source.startswith(PIPELINE_SCHEME):
        return pipeline_inputs(source.removeprefix(PIPELINE_SCHEME), page_size)
    path = Path(source)
    if path.suffix == ".parquet":
        return geoparquet_inputs(path, page_size)
    return [
        CollectionInput(files.collection_id, files.collection(), files.items, str(files.collection_json.parent))
        for files in collection_files_in(path)
    ]


def pipeline_inputs(pipeline_name: str, page_size: int) -> list[CollectionInput]:
    """The collections of the `items` table of a pipeline that ran here (its state in dlt's data folder)."""
    try:
        pipeline = dlt.attach(pipeline_name)
    except Exception as error:  # dlt raises CannotRestorePipelineException, and others for a broken state
        raise StacSourceError(f"no dlt pipeline `{pipeline_name}` to publish from here: {error}") from None

    def collection_input(collection_id: str) -> CollectionInput:
        def items() -> Iterator[dict[str, Any]]:
            return table_items(pipeline, collection_id, page_size)

        where = f"the items table of pipeline `{pipeline_name}`"
        return CollectionInput(collection_id, table_collection(pipeline, collection_id), items, where)

    return [collection_input(collection_id) for collection_id in table_collection_ids(pipeline)]


def geoparquet_inputs(path: Path, page_size: int) -> list[CollectionInput]:
    """The collection of a stac-geoparquet file: the one its items name (its document from the file's
    `stac-geoparquet` metadata, where it has one). Needs rustac (the `demo` extra) to turn rows into items."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        import rustac
    except ImportError:
        raise StacSourceError("publishing a stac-geoparquet file needs rustac: pip install rustac") from None
    if not path.is_file():
        raise FileNotFoundError(f"stac-geoparquet file {path} does not exist")
    file = pq.ParquetFile(path)
    collection_ids = sorted(set(pq.read_table(path, columns=["collection"]).column("collection").to_pylist()))
    if len(collection_ids) != 1 or not collection_ids[0]:
        raise StacSourceError(f"{path} holds the items of collections {collection_ids}: publish one at a time")
    metadata = orjson.loads((file.schema_arrow.metadata or {}).get(GEOPARQUET_METADATA_KEY, b"{}"))
    document = (metadata.get("collections") or {}).get(collection_ids[0])

    def items() -> Iterator[dict[str, Any]]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=page_size):
            yield from rustac.from_arrow(pa.Table.from_batches([batch]))["features"]

    return [CollectionInput(collection_ids[0], document, items, str(path))]
