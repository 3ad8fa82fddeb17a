"""Folders of STAC files, as publishing reads them: `<collection>/collection.json` beside
`<collection>/items.ndjson` or `items.ndjson.gz` (one item per line), or such a collection folder itself."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

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
        return dict(orjson.loads(self.collection_json.read_bytes()))

    def open_items(self) -> TextIO:
        """Opens the items file as text, gzip or not."""
        if self.items_ndjson.suffix == ".gz":
            return gzip.open(self.items_ndjson, "rt", encoding="utf-8")
        return self.items_ndjson.open(encoding="utf-8")

    def items(self) -> Iterator[Any]:
        """Each line's JSON; a line that is not JSON comes as `NotJson`, for the checks to reject."""
        with self.open_items() as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        yield orjson.loads(line.rstrip("\n"))
                    except orjson.JSONDecodeError as error:
                        yield NotJson(f"{self.items_ndjson.name} line {number}: {error}")


@dataclass(frozen=True)
class NotJson:
    """A line of an items file that is not JSON."""

    where: str


def collection_files_in(root: Path) -> list[CollectionFiles]:
    """The collections of `root`: itself when it holds a collection.json, else each of its folders that does."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"STAC data folder {root} does not exist")
    folders = (
        [root]
        if (root / "collection.json").is_file()
        else sorted(path.parent for path in root.glob("*/collection.json"))
    )
    if not folders:
        raise FileNotFoundError(
            f"no collections in {root}: expected <collection>/collection.json with <collection>/items.ndjson or "
            "items.ndjson.gz beside it"
        )
    return [_collection_files(folder) for folder in folders]


def _collection_files(folder: Path) -> CollectionFiles:
    existing = [folder / name for name in ITEM_FILE_NAMES if (folder / name).is_file()]
    if not existing:
        raise FileNotFoundError(f"{folder} has a collection.json but no items.ndjson[.gz]")
    return CollectionFiles(folder / "collection.json", existing[0])
