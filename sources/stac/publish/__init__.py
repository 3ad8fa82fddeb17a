"""A dlt destination that publishes rows as the items of STAC API collections, through the Transactions extension.

    refusals = []
    pipeline = dlt.pipeline("publish", destination=stac_api(url="http://127.0.0.1:8081", refusals=refusals))
    pipeline.run(dlt.resource(items, name="items", max_table_nesting=0, primary_key="id"))

A row is a STAC item (its keys as the item's, `max_table_nesting=0` so that `properties` and `assets` stay whole),
or a row of the `stac` source's `items` table (rebuilt from its columns); it goes to the collection its `collection`
names, or else to the collection named as its table. Rows of a table named `collections` are collections: created
where missing, updated where they differ (dlt loads the tables of a package at once: load collections before their
items, in a run of their own). A row whose `_stac_deleted` is true (dlt's `hard_delete` hint, as the source's
reconcile rows have it) deletes its item or collection. Writes are upserts, so a publish cut off at any moment and
run again ends with each item once. Items the API refuses (a 4xx for that item) are appended to `refusals` and do not
stop the others; a refusal of the collection itself (403) or a server that keeps failing raises, and the load
package stays to be completed by the next run.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.configuration import with_config
from dlt.common.destination import Destination
from dlt.common.schema.typing import TTableSchema
from dlt.common.typing import TDataItems

from ..auth import StacApiCredentials, authorizer_for
from .batches import batch_refusals
from .plan import PublishCounts
from .transactions import Rejection, StacTransactions

__all__ = ["PublishCounts", "Rejection", "StacTransactions", "stac_api", "transactions_for"]


@with_config(sections=("destination", "stac_api"))
def transactions_for(
    url: str = dlt.config.value,
    credentials: StacApiCredentials = dlt.secrets.value,
    max_retries: int = 5,
    backoff_factor: float = 0.5,
    timeout: float = 60.0,
) -> StacTransactions:
    """The write endpoints of the API at `url`, signed in with the first way in that `credentials` offer; every
    argument can come from `[destination.stac_api]` in `.dlt/config.toml` and secrets."""
    return StacTransactions(url, authorizer_for(url, credentials, timeout), max_retries, backoff_factor, timeout)


def stac_api(
    transactions: StacTransactions | None = None,
    refusals: list[Rejection] | None = None,
    batch_size: int = 500,
    **kwargs: Any,
) -> Destination[Any, Any]:
    """The destination that publishes into the API of `transactions` (by default `transactions_for(**kwargs)`),
    `batch_size` items per write; the items the API refused are appended to `refusals`."""
    writer = transactions or transactions_for(**kwargs)
    refused = refusals if refusals is not None else []

    def publish_batch(rows: TDataItems, table: TTableSchema) -> None:
        refused.extend(batch_refusals(writer, rows, table))

    return dlt.destination(
        publish_batch,
        name="stac_api",
        batch_size=batch_size,
        loader_file_format="typed-jsonl",
        naming_convention="direct",
        skip_dlt_columns_and_tables=True,
    )()
