"""A folder of STAC collections: `<collection>/collection.json` + `<collection>/items.ndjson[.gz]`."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "stac"
ITEM_FILE_NAMES = ("items.ndjson.gz", "items.ndjson")


@dataclass(frozen=True)
class CollectionFiles:
    """The two files of one collection folder."""

    collection_json: Path
    items_ndjson: Path

    @property
    def collection_id(self) -> str:
        return str(self.collection()["id"])

    def collection(self) -> dict[str, Any]:
        return dict(json.loads(self.collection_json.read_text()))

    def open_items(self) -> TextIO:
        """Opens the items file as text, gzip or not."""
        if self.items_ndjson.suffix == ".gz":
            return gzip.open(self.items_ndjson, "rt", encoding="utf-8")
        return self.items_ndjson.open(encoding="utf-8")

    def items(self) -> Iterator[dict[str, Any]]:
        with self.open_items() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


class CatalogFolder:
    """Finds the collections of a folder and what they hold."""

    def __init__(self, root: Path = SAMPLE_DATA) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"STAC data folder {self.root} does not exist")
        self.collections = self._find_collections()
        if not self.collections:
            raise FileNotFoundError(
                f"no collections in {self.root}: expected <collection>/collection.json "
                "with <collection>/items.ndjson or items.ndjson.gz beside it"
            )

    def _find_collections(self) -> list[CollectionFiles]:
        found = []
        for collection_json in sorted(self.root.glob("*/collection.json")):
            items = [collection_json.parent / name for name in ITEM_FILE_NAMES]
            existing = [path for path in items if path.is_file()]
            if not existing:
                raise FileNotFoundError(f"{collection_json.parent} has a collection.json but no items.ndjson[.gz]")
            found.append(CollectionFiles(collection_json, existing[0]))
        return found

    def files_of(self, collection_id: str) -> CollectionFiles:
        return next(files for files in self.collections if files.collection_id == collection_id)

    def item_ids_by_collection(self) -> dict[str, set[str]]:
        """The item ids of every collection, as the servers should answer them."""
        return {files.collection_id: {item["id"] for item in files.items()} for files in self.collections}
