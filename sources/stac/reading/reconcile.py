"""Reconciling the tables with the API: a run that also loads the items the table lacks (late arrivals below a
cursor), reloads the items whose content changed (even without a new `updated`), and deletes the items and
collections that the API no longer has.

A reconcile goes in two stages, each over as many load packages (and runs) as it needs, and keeps where it stands
in the `reconcile` resource's state, which dlt commits with every package as it does the readings' checkpoints:

1. **listing**: every item of the selected collections from `since` to the reconcile's upper bound is read, as
   a backfill is, and its id and content hash go into the `_stac_listing` table with the reconcile's id. Its
   window is fixed when the reconcile starts and kept in the state, so that a later run goes on with it;
2. **applying**: once the listing and the run's ordinary `items` reading are loaded, the destination tells what
   differs. Listed items that `items` lacks, or holds with another content hash, are read again by id and merged.
   Items of the selection that the listing lacks are asked for by id too, and only those the API does not serve
   are deleted, through dlt's merge (`_stac_deleted`, a `hard_delete` column): an item that arrived after the
   listing, or that a listing cut short missed, stays. Collections the API no longer shows are deleted with
   their items. Each package applies a batch; the next asks the destination again, so an interrupted reconcile
   goes on from what was committed.

A reconcile belongs to its selection (collections, prefix, `since`): a run that asks for another one starts a
new reconcile instead of going on with the old one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dlt
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ..errors import StacSourceError
from ..planning import DATETIME, WindowSettings, has_unread_parts
from ..server import StacApi
from ..tables import CONTENT_HASH, DELETED, REJECTED_ITEMS_TABLE, AdmittedRow, ItemTables, dlt_items, page_rows
from ..timestamps import optional_timestamp, rfc3339
from .reading import PackageLimits, ReadingAcrossPackages, items_reading

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


def every_item(row: dict[str, Any], value: datetime) -> bool:
    """What a listing by id admits: every item it finds, whatever its datetime."""
    return True


@dataclass(frozen=True)
class Selection:
    """What a run covers, as it was asked for: a reconcile deletes nothing outside it."""

    collections: list[str] | None
    """The collection ids asked for; None for every collection the API shows."""
    prefix: str | None
    """Only collections whose id starts with it (also among those asked for)."""
    since: datetime | None
    """Items acquired before `since` are outside the run's window, and stay."""

    @property
    def key(self) -> str:
        """The same for the same selection: a reconcile goes on only in a run of its own selection."""
        parts = [sorted(self.collections or []), self.prefix, None if self.since is None else rfc3339(self.since)]
        return hashlib.blake2b(orjson.dumps(parts), digest_size=16).hexdigest()

    def collections_predicate(self, column: str) -> tuple[str, list[Any]]:
        """A SQL condition that holds where `column` (a collection id) is inside the selection, and its parameters."""
        conditions: list[str] = ["1 = 1"]
        parameters: list[Any] = []
        if self.collections:
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(self.collections))})")
            parameters += self.collections
        if self.prefix:
            conditions.append(f"SUBSTR({column}, 1, %s) = %s")
            parameters += [len(self.prefix), self.prefix]
        return " AND ".join(conditions), parameters

    def items_predicate(self, alias: str, upper_bound: datetime) -> tuple[str, list[Any]]:
        """The same for the rows of `items` (as `alias`), within the acquisition times a listing to `upper_bound`
        covers."""
        condition, parameters = self.collections_predicate(f"{alias}.collection")
        acquired = f"COALESCE({alias}.datetime, {alias}.start_datetime)"
        condition += f" AND {acquired} <= %s"
        parameters.append(upper_bound)
        if self.since is not None:
            condition += f" AND {acquired} >= %s"
            parameters.append(self.since)
        return condition, parameters


def is_reconciling(state: Mapping[str, Any]) -> bool:
    """Whether a reconcile has a stage left, which the resource's next package goes on with."""
    return state.get("stage") in (LISTING, APPLYING)


@dataclass
class Differences:
    to_read_again: dict[str, list[tuple[str, bool]]] = field(default_factory=lambda: defaultdict(list))
    """Per collection, (id, whether `items` lacks it) of the listed items to load again."""
    unlisted: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Per collection, the ids of the items of `items` that the listing lacks."""
    gone_collections: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.to_read_again or self.unlisted or self.gone_collections)

    def digest(self) -> str:
        """The same for the same differences, whatever their order."""
        parts = [sorted(self.to_read_again.items()), sorted(self.unlisted.items()), self.gone_collections]
        return hashlib.blake2b(orjson.dumps(parts), digest_size=16).hexdigest()


class ReconcileStuck(StacSourceError):
    def __init__(self, differences: Differences) -> None:
        collections = sorted({*differences.to_read_again, *differences.unlisted, *differences.gone_collections})
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
        self.selection = selection
        self.upper_bound = settings.upper_bound
        self.tables = ItemTables("items")
        """The tables of the items read again, whose properties take the columns they have in `items`."""
        self.listing = ReadingAcrossPackages(
            lambda state: items_reading(
                api, selected, state, listing_window(state), page_size, concurrency, shape=listing_shape(state["id"])
            )
        )

    def next_package(self, state: dict[str, Any], limits: PackageLimits) -> Iterator[Any]:
        """The reconcile's next load package; `state` (the `reconcile` resource's) says where it stands, and its
        stage moves here."""
        if not (is_reconciling(state) and state.get("selection") == self.selection.key):
            state.clear()
            state.update(
                id=rfc3339(self.upper_bound),
                selection=self.selection.key,
                since=None if self.selection.since is None else rfc3339(self.selection.since),
                stage=LISTING,
                counts={},
                collections_removed=[],
            )
        if state["stage"] == LISTING:
            yield from self.listing.next_package(state, limits)
            if not state.get("backfill"):
                state["stage"] = APPLYING
        elif not has_unread_parts(dlt.current.resource_state("items")):
            upper_bound = optional_timestamp(state["id"])
            assert upper_bound is not None
            existing = {collection["id"] for collection in self.api.collections}
            differences = read_differences(state["id"], self.selection, upper_bound, existing, limits.items)
            if not differences:
                state["stage"] = DONE
                return
            if differences.digest() == state.get("last_batch"):
                raise ReconcileStuck(differences)
            state["last_batch"] = differences.digest()
            yield from self._rows_that_apply(differences, state, existing, limits)

    def _rows_that_apply(
        self, differences: Differences, state: dict[str, Any], existing: set[str], limits: PackageLimits
    ) -> Generator[Any, None, None]:
        """The items read again, the listing rows of those the API still serves, and the rows that delete what it
        no longer has; counted in `state`. Stops after about `limits.megabytes` of items."""
        counts, size = state["counts"], 0
        for collection, entries in differences.to_read_again.items():
            new = {item_id for item_id, lacking in entries if lacking}
            for found, rejected, missing in self._read_again(collection, [item_id for item_id, _ in entries]):
                tally(counts, collection, "added", sum(row["id"] in new for row, _ in found))
                tally(counts, collection, "changed", sum(row["id"] not in new for row, _ in found))
                items, nbytes = dlt_items(found, rejected, self.tables)
                yield from items
                yield from self._listed_or_deleted(state, collection, found, missing)
                size += nbytes
                if size >= limits.megabytes * 1e6:
                    return
        for collection, ids in differences.unlisted.items():
            if collection not in existing:  # the whole collection is gone: nothing to ask for
                yield from self._listed_or_deleted(state, collection, [], ids)
                continue
            for found, _, missing in self._read_again(collection, ids):
                yield from self._listed_or_deleted(state, collection, found, missing)
        if differences.gone_collections:
            state["collections_removed"] += differences.gone_collections
            gone = [{"id": collection, DELETED: True} for collection in differences.gone_collections]
            yield dlt.mark.with_table_name(gone, "collections")  # rows as the `collections` resource's are

    def _listed_or_deleted(
        self, state: dict[str, Any], collection: str, found: list[AdmittedRow], missing: list[str]
    ) -> Iterator[Any]:
        """The listing rows of the items the API serves; the rows that delete the `missing` ones, counted."""
        if found:
            yield dlt.mark.with_table_name(listing_table(state["id"], [row for row, _ in found]), LISTING_TABLE)
        if missing:
            tally(state["counts"], collection, "removed", len(missing))
            keys = {"collection": [collection] * len(missing), "id": missing}
            yield deletions(keys)
            yield dlt.mark.with_table_name(deletions(keys), LISTING_TABLE)

    def _read_again(
        self, collection: str, ids: list[str]
    ) -> Iterator[tuple[list[AdmittedRow], list[dict[str, Any]], list[str]]]:
        """Per hundred of `ids`: the rows of those the API serves now, its malformed ones, and the ids that have
        no row now (gone from the API, or malformed: `items` holds only what can be a row)."""
        for start in range(0, len(ids), IDS_PER_REQUEST):
            batch = ids[start : start + IDS_PER_REQUEST]
            found: list[AdmittedRow] = []
            rejected: list[dict[str, Any]] = []
            search = self.api.search(collections=[collection], ids=batch, limit=len(batch))
            for page in self.api.search_pages(search):
                admitted, malformed = page_rows(page.entries, page.url, DATETIME.value_of, every_item, collection)
                found += admitted
                rejected += malformed
            rows = {row["id"] for row, _ in found}
            yield found, rejected, [item_id for item_id in batch if item_id not in rows]


def listing_window(state: Mapping[str, Any]) -> WindowSettings:
    """The listing's window, as the reconcile fixed it when it started: from `since` to its upper bound."""
    upper_bound = optional_timestamp(state["id"])
    assert upper_bound is not None
    return WindowSettings(optional_timestamp(state["since"]), upper_bound, timedelta(0), upper_bound)


def listing_shape(reconcile_id: str) -> Callable[[list[AdmittedRow], list[dict[str, Any]]], tuple[list[Any], int]]:
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


def read_differences(
    reconcile_id: str, selection: Selection, upper_bound: datetime, existing: set[str], limit: int
) -> Differences | None:
    """Up to `limit` differences of each kind between the listing and the tables; None where the destination
    holds no items (yet). A missing listing is an empty one, a missing `collections` table holds no collection."""
    differences = Differences()
    with dlt.current.pipeline().sql_client() as client:
        listing, items = client.make_qualified_table_name(LISTING_TABLE), client.make_qualified_table_name("items")
        collections = client.make_qualified_table_name("collections")
        in_items, items_parameters = selection.items_predicate("i", upper_bound)
        in_collections, collections_parameters = selection.collections_predicate("id")
        if not table_exists(client, items):
            return None
        listed = table_exists(client, listing)
        if listed:
            for collection, item_id, lacking in (
                client.execute_sql(
                    f"SELECT l.collection, l.id, i.id IS NULL FROM {listing} l LEFT JOIN {items} i"
                    " ON i.collection = l.collection AND i.id = l.id"
                    f" WHERE l.reconcile_id = %s AND (i.id IS NULL OR i.{CONTENT_HASH} IS NULL"
                    f" OR i.{CONTENT_HASH} <> l.{CONTENT_HASH}) ORDER BY l.collection, l.id LIMIT %s",
                    reconcile_id,
                    limit,
                )
                or []
            ):
                differences.to_read_again[collection].append((item_id, bool(lacking)))
        not_listed = (
            f" AND NOT EXISTS (SELECT 1 FROM {listing} l WHERE l.collection = i.collection AND l.id = i.id"
            " AND l.reconcile_id = %s)"
            if listed
            else ""
        )
        for collection, item_id in (
            client.execute_sql(
                f"SELECT i.collection, i.id FROM {items} i WHERE {in_items}{not_listed}"
                " ORDER BY i.collection, i.id LIMIT %s",
                *items_parameters,
                *([reconcile_id] if listed else []),
                limit,
            )
            or []
        ):
            differences.unlisted[collection].append(item_id)
        if table_exists(client, collections):
            known = client.execute_sql(f"SELECT id FROM {collections} WHERE {in_collections}", *collections_parameters)
            differences.gone_collections = sorted(
                collection for (collection,) in known or [] if collection not in existing
            )
    return differences


def table_exists(client: Any, qualified_name: str) -> bool:
    try:
        client.execute_sql(f"SELECT 1 FROM {qualified_name} WHERE 1 = 0")
    except DatabaseUndefinedRelation:
        return False
    return True


def tally(counts: dict[str, dict[str, int]], collection: str, kind: str, number: int) -> None:
    if number:
        counts.setdefault(collection, dict.fromkeys(KINDS, 0))[kind] += number
