"""What a publish changes: the items of a source held against what the collection holds, as rows for the
`stac_api` destination (an item to upsert, or a deletion), and the counts of the summary."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..tables.rows import DELETED
from .checks import item_problem, publish_digest
from .transactions import Rejection


@dataclass
class PublishCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def count_refusals(self, refusals: list[Rejection], held: dict[str, str]) -> None:
        """Counts the items the API refused as rejected rather than created, updated or deleted; `held` as for
        `item_changes`."""
        for refusal in refusals:
            if refusal.deletion:
                self.deleted -= 1
            elif refusal.item_id in held:
                self.updated -= 1
            else:
                self.created -= 1
            self.rejections.append(refusal)

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}, rejected {len(self.rejections)}"
        )


def deletion_row(collection_id: str, item_id: str) -> dict[str, Any]:
    """The row that tells the destination to delete an item."""
    return {"id": item_id, "collection": collection_id, DELETED: True}


def item_changes(
    items: Iterable[Any],
    collection_id: str,
    held: dict[str, str],
    counts: PublishCounts,
    delete_missing: bool,
) -> Iterator[dict[str, Any]]:
    """The rows that make the collection hold `items`: each new or changed item (its `collection` set to
    `collection_id`), then, with `delete_missing`, a deletion for each item the collection holds that `items` lack.

    `held` maps the id of each item the collection holds to its `publish_digest`. An item that is not valid STAC is
    counted as rejected and not sent; so is a second item of the same id.
    """
    seen: set[str] = set()
    for item in items:
        problem = item_problem(item)
        if problem is None and item["id"] in seen:
            problem = "a second item with this id in the source"
        if problem is not None:
            item_id = item.get("id") if isinstance(item, dict) else None
            counts.rejections.append(Rejection(collection_id, item_id if isinstance(item_id, str) else None, problem))
            continue
        seen.add(item["id"])
        item = {**item, "collection": collection_id}
        digest = held.get(item["id"])
        if digest == publish_digest(item):
            counts.unchanged += 1
            continue
        if digest is None:
            counts.created += 1
        else:
            counts.updated += 1
        yield item
    if delete_missing:
        for item_id in held.keys() - seen:
            counts.deleted += 1
            yield deletion_row(collection_id, item_id)
