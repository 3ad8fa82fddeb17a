"""Reconciling the tables with the API: a run that also loads the items the table lacks (late arrivals below a
cursor), reloads the items whose content changed (even without a new `updated`), and deletes the items and
collections that the API no longer has.

A reconcile goes in two stages, each over as many load packages as it needs, and keeps where it stands in the
`reconcile` resource's state, which dlt commits with every package as it does the readings' checkpoints:

1. **listing**: every item of the selected collections from `since` to the run's upper bound is read, as a
   backfill is, and its id and content hash go into the `_stac_listing` table with the reconcile's id;
2. **applying**: once the listing and the run's ordinary `items` reading are loaded, the destination tells what
   differs. Listed items that `items` lacks, or holds with another content hash, are read again by id and merged;
   items of the selection (the selected collections, and those the API no longer has) that the listing lacks are
   deleted through dlt's merge (`_stac_deleted`, a `hard_delete` column), and so are the collections gone from
   the API. Each package applies one batch; the next asks the destination again, so that an interrupted
   reconcile goes on from what was committed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .api import StacApi
from .checkpoints import has_unread_parts
from .cursor_fields import DATETIME
from .errors import MalformedItem, StacSourceError
from .extract import REJECTED_ITEMS_TABLE, AdmittedRow, dlt_items
from .reading import PackageLimits, ReadingAcrossPackages, items_reading
from .rows import CONTENT_HASH, DELETED, item_row, rejected_item_row
from .tables import ItemTables
from .windows import WindowSettings, rfc3339

LISTING_TABLE = "_stac_listing"
LISTING_COLUMNS: TTableSchemaColumns = {
    "collection": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    CONTENT_HASH: {"data_type": "text"},
    "reconcile_id": {"data_type": "text"},
    DELETED: {"data_type": "bool", "hard_delete": True},
}
IDS_PER_REQUEST = 100
LISTING, APPLYING, DONE = "listing", "applying", "done"
KINDS = ("added", "changed", "removed")


@dataclass(frozen=True)
class Selection:
    """What a run covers, as it was asked for: a reconcile deletes nothing outside it."""

    collections: list[str] | None
    """The collection ids asked for; None for every collection the API shows (that starts with `prefix`)."""
    prefix: str | None
    since: datetime | None
    """Items acquired before `since` are outside the run's window, and stay."""

    def collections_predicate(self, column: str) -> tuple[str, list[Any]]:
        """A SQL condition that holds where `column` (a collection id) is inside the selection, and its parameters."""
        if self.collections:
            return f"{column} IN ({', '.join(['%s'] * len(self.collections))})", list(self.collections)
        if self.prefix:
            return f"SUBSTR({column}, 1, %s) = %s", [len(self.prefix), self.prefix]
        return "1 = 1", []

    def items_predicate(self, alias: str) -> tuple[str, list[Any]]:
        """The same for the rows of `items` (as `alias`), within the selection's acquisition times."""
        condition, parameters = self.collections_predicate(f"{alias}.collection")
        if self.since is None:
            return condition, parameters
        return f"{condition} AND COALESCE({alias}.datetime, {alias}.start_datetime) >= %s", [*parameters, self.since]


def is_reconciling(state: Mapping[str, Any]) -> bool:
    """Whether a reconcile has a stage left, which the resource's next package goes on with."""
    return state.get("stage") in (LISTING, APPLYING)


@dataclass
class Differences:
    to_read_again: dict[str, list[tuple[str, bool]]]
    """Per collection, (id, whether `items` lacks it) of the listed items to load again."""
    to_delete: dict[str, list[str]]
    """Per collection, the ids of the items that the listing lacks."""
    gone_collections: list[str]

    def __bool__(self) -> bool:
        return bool(self.to_read_again or self.to_delete or self.gone_collections)

    def digest(self) -> str:
        """The same for the same differences, whatever their order."""
        parts = [sorted(self.to_read_again.items()), sorted(self.to_delete.items()), self.gone_collections]
        return hashlib.blake2b(orjson.dumps(parts), digest_size=16).hexdigest()


class ReconcileStuck(StacSourceError):
    def __init__(self, differences: Differences) -> None:
        collections = sorted({*differences.to_read_again, *differences.to_delete, *differences.gone_collections})
        super().__init__(
            f"A reconcile found the same differences after it had loaded their changes (collections "
            f"{', '.join(collections[:5])}): the destination did not take them, so the reconcile stopped instead of "
            "trying again. Nothing was lost: the tables hold what its last complete package left."
        )


class Reconciler:
    """One run's reconcile: its listing reading, kept from package to package, and the differences it applies."""

    def __init__(
        self,
        api: StacApi,
        selected: list[str],
        selection: Selection,
        settings: WindowSettings,
        page_size: int,
        concurrency: int,
    ) -> None:
        self.api = api
        self.selected = selected
        self.selection = selection
        self.upper_bound = settings.upper_bound
        everything = WindowSettings(settings.since, settings.upper_bound, settings.lag, settings.upper_bound)
        self.listing = ReadingAcrossPackages(
            lambda state: items_reading(
                api, selected, state, everything, page_size, concurrency, shape=listing_shape(state["id"])
            )
        )

    def next_package(self, state: dict[str, Any], limits: PackageLimits) -> Iterator[Any]:
        """The reconcile's next load package; `state` (the `reconcile` resource's) says where it stands, and its
        stage moves here."""
        if not is_reconciling(state):
            state.clear()
            state.update(id=rfc3339(self.upper_bound), stage=LISTING, counts={}, collections_removed=[])
        if state["stage"] == LISTING:
            reading = self.listing.for_package(state)
            with self.listing.abandoned_on_error():
                yield from reading.next_package(limits)
            reading.save_checkpoint(state)
            self.listing.saved(state)
            if not state.get("backfill"):
                state["stage"] = APPLYING
        elif not has_unread_parts(dlt.current.resource_state("items")):
            differences = read_differences(state["id"], self.selection, self.selected, limits.items)
            if not differences:
                state["stage"] = DONE
                return
            if differences.digest() == state.get("last_batch"):
                raise ReconcileStuck(differences)
            state["last_batch"] = differences.digest()
            yield from self._applied(differences, state)

    def _applied(self, differences: Differences, state: dict[str, Any]) -> Generator[Any, None, None]:
        """The items read again, and the rows that delete what the API no longer has; counted in `state`."""
        counts = state["counts"]
        tables = ItemTables()
        for collection, entries in differences.to_read_again.items():
            found, rejected, missing = self._read_again(collection, [item_id for item_id, _ in entries])
            new = {item_id for item_id, lacking in entries if lacking}
            tally(counts, collection, "added", sum(row["id"] in new for row, _ in found))
            tally(counts, collection, "changed", sum(row["id"] not in new for row, _ in found))
            yield from dlt_items(found, rejected, tables)[0]
            if found:
                yield dlt.mark.with_table_name(listing_table(state["id"], [row for row, _ in found]), LISTING_TABLE)
            if missing:
                differences.to_delete.setdefault(collection, []).extend(missing)
        for collection, ids in differences.to_delete.items():
            tally(counts, collection, "removed", len(ids))
            keys = {"collection": [collection] * len(ids), "id": ids}
            yield deletions(keys)
            yield dlt.mark.with_table_name(deletions(keys), LISTING_TABLE)
        if differences.gone_collections:
            state["collections_removed"] += differences.gone_collections
            gone = [{"id": collection, DELETED: True} for collection in differences.gone_collections]
            yield dlt.mark.with_table_name(gone, "collections")  # rows as the `collections` resource's are

    def _read_again(self, collection: str, ids: list[str]) -> tuple[list[AdmittedRow], list[dict[str, Any]], list[str]]:
        """The rows of the items `ids` as the API serves them now, the malformed ones among them, and the ids that
        have no row now (gone from the API, or malformed: `items` holds only what can be a row)."""
        found: list[AdmittedRow] = []
        rejected: list[dict[str, Any]] = []
        for start in range(0, len(ids), IDS_PER_REQUEST):
            batch = ids[start : start + IDS_PER_REQUEST]
            for page in self.api.search_pages(self.api.search(collections=[collection], ids=batch, limit=len(batch))):
                for raw in page.entries:
                    try:
                        row = item_row(raw)
                    except MalformedItem as reason:
                        rejected.append(rejected_item_row(raw, str(reason), page.url, collection))
                        continue
                    found.append((row, DATETIME.value_of(row)))
        rows = {row["id"] for row, _ in found}
        return found, rejected, [item_id for item_id in ids if item_id not in rows]


def listing_shape(reconcile_id: str) -> Any:
    """The listing's dlt items for a page: its items' ids and content hashes, its malformed items."""

    def shape(admitted: list[AdmittedRow], rejected: list[dict[str, Any]]) -> tuple[list[Any], int]:
        items: list[Any] = []
        nbytes = 0
        if admitted:
            table = listing_table(reconcile_id, [row for row, _ in admitted])
            items.append(dlt.mark.with_table_name(table, LISTING_TABLE))
            nbytes = table.nbytes
        if rejected:
            items.append(dlt.mark.with_table_name(rejected, REJECTED_ITEMS_TABLE))
        return items, nbytes

    return shape


def listing_table(reconcile_id: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "collection": [row["collection"] for row in rows],
            "id": [row["id"] for row in rows],
            CONTENT_HASH: [row[CONTENT_HASH] for row in rows],
            "reconcile_id": [reconcile_id] * len(rows),
        }
    )


def deletions(keys: dict[str, list[str]]) -> pa.Table:
    """Rows that delete their keys from a table in dlt's merge."""
    count = len(next(iter(keys.values())))
    return pa.table({**keys, DELETED: pa.array([True] * count, pa.bool_())})


def read_differences(reconcile_id: str, selection: Selection, selected: list[str], limit: int) -> Differences | None:
    """Up to `limit` differences of each kind between the listing and the tables; None where the destination
    holds no listing or no items (yet)."""
    with dlt.current.pipeline().sql_client() as client:
        listing, items = client.make_qualified_table_name(LISTING_TABLE), client.make_qualified_table_name("items")
        collections = client.make_qualified_table_name("collections")
        in_items, items_parameters = selection.items_predicate("i")
        in_collections, collections_parameters = selection.collections_predicate("id")
        try:
            to_read_again = client.execute_sql(
                f"SELECT l.collection, l.id, i.id IS NULL FROM {listing} l LEFT JOIN {items} i"
                " ON i.collection = l.collection AND i.id = l.id"
                f" WHERE l.reconcile_id = %s AND (i.id IS NULL OR i.{CONTENT_HASH} IS NULL"
                f" OR i.{CONTENT_HASH} <> l.{CONTENT_HASH}) ORDER BY l.collection, l.id LIMIT %s",
                reconcile_id,
                limit,
            )
            to_delete = client.execute_sql(
                f"SELECT i.collection, i.id FROM {items} i WHERE {in_items} AND NOT EXISTS (SELECT 1 FROM {listing} l"
                " WHERE l.collection = i.collection AND l.id = i.id AND l.reconcile_id = %s)"
                " ORDER BY i.collection, i.id LIMIT %s",
                *items_parameters,
                reconcile_id,
                limit,
            )
            known = client.execute_sql(f"SELECT id FROM {collections} WHERE {in_collections}", *collections_parameters)
        except DatabaseUndefinedRelation:
            return None
    differences = Differences(defaultdict(list), defaultdict(list), [])
    for collection, item_id, lacking in to_read_again or []:
        differences.to_read_again[collection].append((item_id, bool(lacking)))
    for collection, item_id in to_delete or []:
        differences.to_delete[collection].append(item_id)
    existing = set(selected)
    differences.gone_collections = sorted(collection for (collection,) in known or [] if collection not in existing)
    return differences


def tally(counts: dict[str, dict[str, int]], collection: str, kind: str, number: int) -> None:
    if number:
        counts.setdefault(collection, dict.fromkeys(KINDS, 0))[kind] += number
