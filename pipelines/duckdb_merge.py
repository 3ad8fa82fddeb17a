"""The main job's DuckDB destination: dlt's own, with a merge whose deduplication holds only the keys.

dlt merges a load package through a staging table and inserts its rows deduplicated by primary key, so that a load
job replayed after a crash (DuckDB committed its rows, dlt had not yet marked it done) adds nothing twice. It
numbers the rows with `ROW_NUMBER() OVER (PARTITION BY <key>)`, a window that DuckDB computes over every column:
the whole package is held in memory, 124 MB more for 13,000 items of the bench, out of memory for 26,000 under
`memory_limit = "256MB"` (bench/README.md). Here the first row of each key is kept by its `rowid`, which holds the
keys alone (25-47 MB at any of those sizes) and keeps the same guarantee. The destination stays `duckdb` by type:
dlt's state, `pipeline.dataset()` and the dashboard see the same destination as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt.common.destination.client import FollowupJobRequest
from dlt.common.destination.reference import DestinationReference
from dlt.common.destination.typing import PreparedTableSchema
from dlt.common.schema.typing import TSortOrder
from dlt.destinations import duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.sql_jobs import SqlMergeFollowupJob

DUCKDB_TYPE = DestinationReference.normalize_type(f"{duckdb.__module__}.{duckdb.__qualname__}")
"""`dlt.destinations.duckdb`"""


class KeysOnlyDedupMerge(SqlMergeFollowupJob):
    """dlt's merge, with the staged rows deduplicated by the first `rowid` of each primary key."""

    @classmethod
    def gen_select_from_dedup_sql(
        cls,
        table_name: str,
        primary_keys: Sequence[str],
        columns: Sequence[str],
        dedup_sort: tuple[str, TSortOrder] | None = None,
        condition: str | None = None,
        condition_columns: Sequence[str] | None = None,
        skip_dedup: bool = False,
    ) -> str:
        if skip_dedup or dedup_sort is not None or condition_columns is not None:
            return super().gen_select_from_dedup_sql(
                table_name, primary_keys, columns, dedup_sort, condition, condition_columns, skip_dedup
            )
        first_of_each_key = f"SELECT min(rowid) FROM {table_name} GROUP BY {', '.join(primary_keys)}"
        return (
            f"SELECT {', '.join(columns)} FROM {table_name} "
            f"WHERE rowid IN ({first_of_each_key}) AND ({condition or '1 = 1'})"
        )


class KeysOnlyDedupClient(DuckDbClient):
    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequest]:
        return [KeysOnlyDedupMerge.from_table_chain(table_chain, self.sql_client)]


class duckdb_keys_only_dedup(duckdb):
    """dlt's `duckdb` destination, merging with `KeysOnlyDedupMerge`."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return KeysOnlyDedupClient

    @property
    def destination_type(self) -> str:
        return DUCKDB_TYPE
