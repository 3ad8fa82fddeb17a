"""Running the source to its end, one bounded load package after another, safe to kill at any moment.

    report = run_in_packages(pipeline, stac(url=...))

Each package of the source commits in the destination with the state that says how far it read (dlt's
`_dlt_pipeline_state` row, which counts once the package's `_dlt_loads` row is written). A run:

1. completes the packages that an interrupted run left pending (dlt would load them and skip the new data);
2. checks that the state kept on this machine is the one the destination committed. It is ahead after a
   package that could not be completed (aborted): then the destination's state is taken, and the items of
   that package are read again. It is behind after a kill between dlt committing a package and saving the
   state on disk: then too the destination's is taken;
3. runs the source until no selected resource has parts left to read; each package after the first holds
   only the resources that still read. On Postgres, the merge keys of the source's tables get an index after
   the first package: each merge looks up the package's keys in the table, which without one means reading
   the whole table once per package.

A resource's side of a package is here too (`resource_package`, `reconcile_package`): its reading's next package,
its progress and extract metrics, and, under a plain `pipeline.run`, the warning that items are left to read.

Crash safety also needs the merges to be idempotent when dlt replays a load job that the destination had
committed before the kill: the source's tables merge with dlt's deduplication of the staged rows, and on
Postgres the `_dlt_id` columns must not be UNIQUE (`[destination.postgres] create_indexes = false`), else the
replay fails and dlt aborts the package.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common import logger
from dlt.common.destination.client import WithStateSync
from dlt.common.pipeline import TRefreshMode
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.common.storages.load_package import LoadPackageInfo
from dlt.destinations.exceptions import DestinationUndefinedEntity
from dlt.extract import DltSource
from dlt.pipeline.state_sync import load_pipeline_state_from_destination

from .planning import cursor_field_names, has_unread_parts
from .reading import PackageLimits, Reading, ReadingAcrossPackages, Reconciler, is_reconciling

__all__ = [
    "PackageRows",
    "ResumedPackage",
    "RunReport",
    "reconcile_package",
    "resource_package",
    "run_in_packages",
]

_in_packages: ContextVar[bool] = ContextVar("stac_run_in_packages", default=False)
"""Whether the source runs under `run_in_packages`, which loads every package: then a package that leaves items to
read says nothing of it."""


def _running_in_packages() -> bool:
    return _in_packages.get()


@contextmanager
def _packages_run() -> Iterator[None]:
    token = _in_packages.set(True)
    try:
        yield
    finally:
        _in_packages.reset(token)


def resource_package(
    reading: ReadingAcrossPackages, limits: PackageLimits, report_cursor_fields: bool = False
) -> Generator[Any, None, None]:
    """A resource's next load package, and the checkpoint that dlt commits with it in the resource's state; its
    progress to dlt's collector, and what it read (and, with `report_cursor_fields`, what each cursor follows) to
    the package's extract metrics. Under `pipeline.run`, a package that leaves items to read says so."""
    state = dlt.current.resource_state()
    progress = dlt.current.pipeline().collector  # dlt counts the rows; this adds the total and a note

    def shown(package: Reading) -> None:
        first_page_of_the_reading = package.packages == 1 and package.pages_read == 1
        if first_page_of_the_reading and package.expected_items:
            progress.update(package.tables.table_name, inc=0, inc_total=package.expected_items)
        progress.update(package.tables.table_name, inc=0, message=package.progress_note())

    package = yield from reading.next_package(state, limits, on_page=shown)
    metrics = dlt.current.resource_metrics()
    metrics.update(pages_read=package.pages_read, items_read=package.items_read)
    if report_cursor_fields:
        metrics["cursor_fields"] = cursor_field_names(state)
    if not package.finished and not _running_in_packages():
        logger.warning(_left_to_read(package.tables.table_name, package))


def _left_to_read(table: str, package: Reading) -> str:
    loaded = sum(package.loaded_by_key.values())
    left = (
        f"about {package.expected_items - loaded:,} of {package.expected_items:,} items are"
        if (package.expected_items and package.expected_items > loaded)
        else "more items are"
    )
    return (
        f"stac: `{table}` loaded {loaded:,} items in {package.packages} load package(s), and {left} left to read: "
        "pipeline.run(source) loads one package per resource. Load them all with run_in_packages(pipeline, "
        "source) (from dlt_stac import run_in_packages), or run the pipeline again for the next package."
    )


def reconcile_package(reconciler: Reconciler, limits: PackageLimits) -> Iterator[Any]:
    """The reconcile's next load package; what it changed to the package's extract metrics. Under `pipeline.run`,
    a reconcile that goes on in the next package says so."""
    state = dlt.current.resource_state()
    yield from reconciler.next_package(state, limits)
    removed = dict.fromkeys(state["collections_removed"], True)  # dlt's extract metrics keep no lists
    dlt.current.resource_metrics().update(reconciled=dict(state["counts"]), collections_removed=removed)
    if is_reconciling(state) and not _running_in_packages():
        logger.warning(
            "stac: the reconcile has more to do than this load package holds: pipeline.run(source) loads one "
            "package per resource. Finish it with run_in_packages(pipeline, source) (from dlt_stac import "
            "run_in_packages), or run the pipeline again for the next package."
        )


@dataclass(frozen=True)
class PackageRows:
    load_id: str
    rows: dict[str, int]
    """Rows per table, as dlt normalized them."""


@dataclass(frozen=True)
class ResumedPackage:
    load_id: str
    tables: list[str]
    """The tables its load jobs wrote (its row counts were lost with the run that extracted it)."""


@dataclass
class RunReport:
    resumed: list[ResumedPackage] = field(default_factory=list)
    """Packages that an interrupted run left pending, completed by this one."""
    restored: str | None = None
    """What was wrong with the state on this machine, when the destination's committed state was taken instead."""
    packages: list[PackageRows] = field(default_factory=list)
    """The packages this run extracted and loaded (an extract that found nothing new makes none)."""
    read: Counter[str] = field(default_factory=Counter)
    """Pages and items this run's searches read from the API (`pages_read`, `items_read`), from the resources'
    extract metrics."""
    cursor_fields: dict[str, str] = field(default_factory=dict)
    """What the cursor of each collection of `items` follows after the run: `datetime` or `updated`."""
    reconciled: dict[str, dict[str, int]] | None = None
    """After a reconcile: the items added, changed and removed per collection (`reading/reconcile.py`)."""
    collections_removed: list[str] = field(default_factory=list)
    """After a reconcile: the collections gone from the API, removed with their items."""

    def add_metrics(self, metrics: list[dict[str, Any]]) -> None:
        """Takes in what the resources of a package reported (`resource_metrics`): what they read, summed; where
        their cursors and a reconcile stand, the last said."""
        for reported in metrics:
            self.read.update({name: reported.get(name, 0) for name in ("pages_read", "items_read")})
            self.cursor_fields.update(reported.get("cursor_fields", {}))
            if "reconciled" in reported:
                self.reconciled = reported["reconciled"]
                self.collections_removed = list(reported.get("collections_removed", {}))

    def rows(self) -> dict[str, int]:
        """Rows loaded per table by the packages this run extracted."""
        total: Counter[str] = Counter()
        for package in self.packages:
            total.update(package.rows)
        return dict(total)


def run_in_packages(pipeline: dlt.Pipeline, source: DltSource, refresh: TRefreshMode | None = None) -> RunReport:
    """Loads `source` with `pipeline` until every selected resource is read to its end; see the module's doc.

    `refresh` applies to the first package only (e.g. "drop_sources"). Raises `PipelineStepFailed` as
    `pipeline.run` does, and on a package with failed jobs.
    """
    with _packages_run():
        return _run_in_packages(pipeline, source, refresh)


def _run_in_packages(pipeline: dlt.Pipeline, source: DltSource, refresh: TRefreshMode | None) -> RunReport:
    report = RunReport()
    pipeline.sync_destination()
    if pipeline.has_pending_data:
        report.resumed = load_pending_packages(pipeline)
    report.restored = restore_committed_state(pipeline, source.name)
    selected = source
    indexed: set[str] = set()
    states_before: dict[str, Any] = {}
    while True:
        first_package = {"refresh": refresh} if refresh and not report.packages else {}
        info = pipeline.run(selected, **first_package)  # type: ignore[arg-type]
        info.raise_on_failed_jobs()
        packages = rows_of_last_run(pipeline)
        report.add_metrics(resource_metrics(pipeline.last_trace))
        indexed |= index_merge_keys(pipeline, already=indexed)
        report.packages += packages
        unread = [name for name in source.selected_resources if has_more_to_load(source.resources[name].state)]
        if not unread:
            return report
        states = {name: copy.deepcopy(dict(source.resources[name].state)) for name in unread}
        if not any(_data_rows(package) for package in packages) and states == states_before:
            raise RuntimeError(f"A load package of {', '.join(unread)} read nothing, and moved nothing on")
        states_before = states
        selected = source.with_resources(*unread)


def has_more_to_load(state: Mapping[str, Any]) -> bool:
    """Whether a resource's state says that its next package has more to load: parts of a window left to read,
    or a reconcile with a stage left."""
    return has_unread_parts(state) or is_reconciling(state)


def load_pending_packages(pipeline: dlt.Pipeline) -> list[ResumedPackage]:
    """Normalizes and loads the packages an interrupted run left."""
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()
    info = pipeline.load()
    info.raise_on_failed_jobs()
    return [ResumedPackage(package.load_id, _tables_of(package)) for package in info.load_packages]


def restore_committed_state(pipeline: dlt.Pipeline, source_name: str) -> str | None:
    """Takes the destination's committed state of `source_name` when the one on this machine differs from it;
    says what differed, or None when they are the same (or the pipeline keeps no state in the destination)."""
    if not pipeline.config.restore_from_destination or not pipeline.default_schema_name:
        return None
    committed = (committed_state(pipeline) or {}).get("sources", {}).get(source_name)
    local = pipeline.state.get("sources", {}).get(source_name)
    if local == committed:
        return None
    aborted = _aborted_packages(pipeline)
    with pipeline.managed_state() as state:
        if committed is None:
            state.get("sources", {}).pop(source_name, None)
        else:
            state.setdefault("sources", {})[source_name] = committed
    if aborted:
        return (
            f"load package {aborted[-1]} of an earlier run could not be completed (dlt aborted it): the cursors "
            f"went back to those of the last package {pipeline.dataset_name} holds, and its items load again"
        )
    return (
        f"the state on this machine was not the one {pipeline.dataset_name} holds (a run was killed between "
        "loading a package and saving its state): the destination's state was taken"
    )


def index_merge_keys(pipeline: dlt.Pipeline, already: set[str]) -> set[str]:
    """Postgres: an index on the primary key of every merged table of the pipeline's schema but those `already`
    done; returns the tables done."""
    if pipeline.destination.destination_type != "dlt.destinations.postgres":
        return set()
    merged = {
        str(table["name"]): get_columns_names_with_prop(table, "primary_key")
        for table in pipeline.default_schema.data_tables()
        if table.get("write_disposition") == "merge"
    }
    todo = {table: keys for table, keys in merged.items() if keys and table not in already}
    if not todo:
        return set()
    with pipeline.sql_client() as client:
        for table, keys in todo.items():
            name = client.escape_column_name(f"{table}__{'_'.join(keys)}"[:63])
            columns = ", ".join(client.escape_column_name(key) for key in keys)
            client.execute_sql(
                f"CREATE INDEX IF NOT EXISTS {name} ON {client.make_qualified_table_name(table)} ({columns})"
            )
    return set(todo)


def committed_state(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """The pipeline state of the last package the destination completed (None if there is none)."""
    try:
        with pipeline.destination_client() as client:
            if not isinstance(client, WithStateSync):
                return None
            return load_pipeline_state_from_destination(pipeline.pipeline_name, client)  # type: ignore[return-value]
    except DestinationUndefinedEntity:
        return None


def rows_of_last_run(pipeline: dlt.Pipeline) -> list[PackageRows]:
    """The rows per table of the package the last `pipeline.run` extracted (none when it found nothing to load)."""
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace is not None else None
    if info is None or not info.loads_ids:
        return []
    return [PackageRows(info.loads_ids[-1], dict(info.row_counts))]


def _tables_of(package: LoadPackageInfo) -> list[str]:
    return sorted({job.job_file_info.table_name for job in package.jobs["completed_jobs"]})


def _data_rows(package: PackageRows) -> int:
    return sum(rows for table, rows in package.rows.items() if not table.startswith("_dlt"))


def resource_metrics(trace: Any) -> list[dict[str, Any]]:
    """The custom metrics each resource reported in a trace's extract step (also of an extract that found nothing
    to load), as dlt's `ExtractInfo.asdict()` gives them."""
    info = trace.last_extract_info if trace is not None else None
    if info is None:
        return []
    return [resource.get("custom_metrics") or {} for resource in info.asdict()["resource_metrics"]]


def _aborted_packages(pipeline: dlt.Pipeline) -> list[str]:
    return [
        load_id
        for load_id in pipeline.list_completed_load_packages()
        if pipeline.get_load_package_info(load_id).state == "aborted"
    ]
