"""The benchmark's items: copies of the sample items, as catalog folders that the local stack loads.

`bench/.data/items-<N>/` holds
- `catalog/`: N items, split evenly over the sample's collections, each copy in its source item's
  collection, with a new id and its datetimes shifted to spread over BASE_START..BASE_END;
- `new/`: 1% more items, dated after every item of `catalog/` (NEW_START..NEW_END), for the
  incremental run;
- `manifest.json`: the counts, written last, so that a folder with a manifest is complete.

Both folders have the layout of `stack/catalog_folder.py`. A folder is generated once and reused.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stack import CatalogFolder, CollectionFiles

DATA_ROOT = Path(__file__).resolve().parent / ".data"
BASE_START = datetime(2015, 1, 1, tzinfo=timezone.utc)
BASE_END = datetime(2024, 1, 1, tzinfo=timezone.utc)
NEW_START = datetime(2024, 1, 1, 1, tzinfo=timezone.utc)
NEW_END = datetime(2024, 12, 1, tzinfo=timezone.utc)
SHIFTED_PROPERTIES = ("datetime", "start_datetime", "end_datetime")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BenchData:
    """A generated folder: its base catalog, its new items, and how many of each per collection."""

    root: Path
    items_by_collection: dict[str, int]
    new_items_by_collection: dict[str, int]

    @property
    def items(self) -> int:
        return sum(self.items_by_collection.values())

    @property
    def new_items(self) -> int:
        return sum(self.new_items_by_collection.values())

    @property
    def catalog(self) -> CatalogFolder:
        return CatalogFolder(self.root / "catalog")

    @property
    def new_catalog(self) -> CatalogFolder:
        return CatalogFolder(self.root / "new")


def bench_data(items: int, data_root: Path = DATA_ROOT) -> BenchData:
    """The folder of `items` items, generated first if it does not exist yet."""
    root = data_root / f"items-{items}"
    if not (root / MANIFEST).exists():
        generate(root, items)
    manifest = json.loads((root / MANIFEST).read_text())
    return BenchData(root, manifest["items_by_collection"], manifest["new_items_by_collection"])


def generate(root: Path, items: int) -> None:
    """Writes `catalog/`, `new/` and the manifest into a temporary folder, then moves it to `root`."""
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    sources = CatalogFolder().collections
    counts = even_shares(items, len(sources))
    new_counts = even_shares(max(1, round(items / 100)), len(sources))
    for files, count, new_count in zip(sources, counts, new_counts, strict=True):
        samples = list(files.items())
        write_collection(partial / "catalog", files, copies(samples, count, BASE_START, BASE_END, "b"))
        write_collection(partial / "new", files, copies(samples, new_count, NEW_START, NEW_END, "new"))
    ids = [files.collection_id for files in sources]
    manifest = {
        "items_by_collection": dict(zip(ids, counts, strict=True)),
        "new_items_by_collection": dict(zip(ids, new_counts, strict=True)),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)


def even_shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` counts that differ by at most one."""
    return [total // parts + (index < total % parts) for index in range(parts)]


def copies(
    samples: list[dict[str, Any]], count: int, start: datetime, end: datetime, id_tag: str
) -> Iterator[dict[str, Any]]:
    """`count` copies of the samples in turn, the k-th dated at start + k/count of the way to `end`."""
    span = end - start
    for index in range(count):
        sample = samples[index % len(samples)]
        item = json.loads(json.dumps(sample))
        item["id"] = f"{sample['id']}-{id_tag}{index:07d}"
        shift_datetimes(item["properties"], start + span * index / count)
        yield item


def shift_datetimes(properties: dict[str, Any], new_anchor: datetime) -> None:
    """Moves `datetime` (or `start_datetime` where it is null) to `new_anchor`, and the other two by as much."""
    anchor = properties.get("datetime") or properties["start_datetime"]
    shift = new_anchor.replace(microsecond=0) - parse_timestamp(anchor)
    for name in SHIFTED_PROPERTIES:
        if properties.get(name):
            properties[name] = rfc3339(parse_timestamp(properties[name]) + shift)


def parse_timestamp(value: str) -> datetime:
    """RFC 3339, and the `2024-04-19 04:59:04.220006+00:00` form that some sample items use."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def rfc3339(value: datetime) -> str:
    text = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f" if value.microsecond else "%Y-%m-%dT%H:%M:%S")
    return text + "Z"


def write_collection(root: Path, files: CollectionFiles, items: Iterator[dict[str, Any]]) -> None:
    folder = root / files.collection_json.parent.name
    folder.mkdir(parents=True)
    shutil.copyfile(files.collection_json, folder / "collection.json")
    # Level 1: the 100k folder compresses in seconds, not minutes; the size matters little.
    with gzip.open(folder / "items.ndjson.gz", "wt", encoding="utf-8", compresslevel=1) as lines:
        lines.writelines(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
