"""A folder of STAC collections: `<collection>/collection.json` + `<collection>/items.ndjson[.gz]`."""

from __future__ import annotations

from pathlib import Path

from dlt_stac.publish.files import CollectionFiles, collection_files_in

__all__ = ["SAMPLE_DATA", "CatalogFolder", "CollectionFiles"]

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "stac"


class CatalogFolder:
    """Finds the collections of a folder and what they hold."""

    def __init__(self, root: Path = SAMPLE_DATA) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"STAC data folder {self.root} does not exist")
        self.collections = collection_files_in(self.root)

    def files_of(self, collection_id: str) -> CollectionFiles:
        return next(files for files in self.collections if files.collection_id == collection_id)

    def item_ids_by_collection(self) -> dict[str, set[str]]:
        """The item ids of every collection, as the servers should answer them."""
        return {files.collection_id: {item["id"] for item in files.items()} for files in self.collections}
