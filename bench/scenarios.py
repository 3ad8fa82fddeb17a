"""Catalog shapes beside the main scenario, where an incremental run used to cost what exists, not what changed:

f. many small collections (1,000 of 3 items each): the first load, then a run with nothing new;
g. one collection of 20,000 items that share one `datetime` (as DEM tiles or land-cover maps do): the first
   load, then a run with nothing new.

Each shape goes into the bench's pgstac after the main scenario's runs (so that a, b and c never see it), is
loaded by ours alone (the main job, selecting the shape's collections by their id prefix), and is taken out
again at the end. The items are copies of the sample's naip items, with new ids and datetimes, and no `updated`.
Meanwhile pgstac lists `updated` among its queryables, as a catalog whose items may carry it does: the shapes'
collections load by `datetime`, and each run after the first also asks about their late arrivals
(`sources/stac/reading/late_arrivals.py`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.catalog import rfc3339
from bench.measure import Measurement, measure_main_job
from bench.stack import BenchStack, log, pgstac_cursor
from stack import CatalogFolder
from stack.pgstac import add_timestamp_queryable

SCENARIOS = ("f", "g")
SAMPLE_COLLECTION = "naip"
UPDATED = "updated"
INSERT_BATCH = 2000
"""Items per `create_items` call: a statement of 20,000 items would hold their JSON twice in the server."""


@dataclass(frozen=True)
class Shape:
    key: str
    prefix: str
    """The id prefix of its collections, which selects them (`[sources.stac] collection_prefix`)."""
    collections: list[dict[str, Any]]
    items_per_collection: int
    shared_datetime: datetime | None = None
    """The one `datetime` of every item; None: each item its own."""

    @property
    def items(self) -> int:
        return len(self.collections) * self.items_per_collection


def shape_of(key: str) -> Shape:
    sample = CatalogFolder().files_of(SAMPLE_COLLECTION).collection()
    if key == "f":
        prefix = "bench-many-"
        return Shape(key, prefix, [renamed(sample, f"{prefix}{index:04d}") for index in range(1000)], 3)
    prefix = "bench-shared-datetime"
    return Shape(key, prefix, [renamed(sample, prefix)], 20000, datetime(2021, 6, 1, tzinfo=timezone.utc))


def renamed(collection: dict[str, Any], collection_id: str) -> dict[str, Any]:
    """A copy of `collection` with another id, and no links (they name the original)."""
    return {**copy.deepcopy(collection), "id": collection_id, "links": []}


def items_of(shape: Shape, collection_id: str, samples: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The collection's copies of the sample items: dated an hour apart from 2020 on, or all at the shared
    datetime."""
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    for index in range(shape.items_per_collection):
        item = copy.deepcopy(samples[index % len(samples)])
        item["id"] = f"{collection_id}-{index:06d}"
        item["collection"] = collection_id
        item["links"] = []
        item["properties"]["datetime"] = rfc3339(shape.shared_datetime or start + timedelta(hours=index))
        yield item


@contextmanager
def shape_served(stack: BenchStack, shape: Shape) -> Iterator[None]:
    """The shape's collections and items in the stack's pgstac while in the block, deleted again after it."""
    ids = [collection["id"] for collection in shape.collections]
    try:
        with pgstac_cursor(stack.cluster) as cursor:
            add_timestamp_queryable(cursor, UPDATED)
            for collection in shape.collections:
                cursor.execute("SELECT pgstac.create_collection(%s::jsonb)", [json.dumps(collection)])
            samples = list(CatalogFolder().files_of(SAMPLE_COLLECTION).items())
            for collection_id in ids:
                batch: list[dict[str, Any]] = []
                for item in items_of(shape, collection_id, samples):
                    batch.append(item)
                    if len(batch) == INSERT_BATCH:
                        cursor.execute("SELECT pgstac.create_items(%s::jsonb)", [json.dumps(batch)])
                        batch = []
                if batch:
                    cursor.execute("SELECT pgstac.create_items(%s::jsonb)", [json.dumps(batch)])
        log(f"{shape.key}: {len(ids)} collection(s) of {shape.items_per_collection} items in pgstac")
        yield
    finally:
        with pgstac_cursor(stack.cluster) as cursor:  # their items go with them (ON DELETE CASCADE)
            cursor.execute("DELETE FROM pgstac.collections WHERE id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM pgstac.queryables WHERE name = %s", [UPDATED])
        log(f"{shape.key}: its collections are deleted from pgstac again")


def shape_runs(
    stack: BenchStack, key: str, runs: int, workdir: Path, our_env: dict[str, str]
) -> list[dict[str, Measurement]]:
    """Per run: ours' first load of the shape (`<key>`) and the run after it with nothing new (`<key>-again`)."""
    shape = shape_of(key)
    env = {**our_env, "SOURCES__STAC__COLLECTION_PREFIX": shape.prefix}
    arguments = ["--url", stack.url, "--destination", "duckdb"]
    measured = []
    with shape_served(stack, shape):
        for run in range(runs):
            folder = workdir / f"{key}-{run}"
            folder.mkdir(parents=True)
            first = measure_main_job(key, arguments, folder, env)
            again = measure_main_job(f"{key}-again", arguments, folder, env, items_before=shape.items)
            log(f"{key} run {run + 1}: first load {first.wall_s:.1f} s, nothing new {again.wall_s:.1f} s")
            measured.append({key: first, f"{key}-again": again})
    return measured
