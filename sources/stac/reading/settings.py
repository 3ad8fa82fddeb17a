"""Turning the source's config values into the typed settings of a run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dlt.extract.incremental.context import get_interval_context

from ..arguments import at_least_one, positive
from ..errors import StacSourceError
from ..planning import WindowSettings
from ..timestamps import parse_timestamp
from .reading import PackageLimits


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _config_timestamp(key: str, value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None else _as_utc(value)
    try:
        return parse_timestamp(str(value))
    except ValueError:
        raise StacSourceError(
            f"`{key}` must be an RFC 3339 timestamp such as 2024-01-31T00:00:00Z, got {value!r}"
        ) from None


def window_settings(
    since: str | datetime | None, until: str | datetime | None, lag_s: float, allow_external_schedulers: bool
) -> WindowSettings:
    """The run's window settings; the upper bound is fixed here, when the run starts."""
    context = get_interval_context() if allow_external_schedulers else None
    interval = context.interval if context is not None else None
    return WindowSettings(
        since=_config_timestamp("since", since),
        until=_config_timestamp("until", until),
        lag=timedelta(seconds=lag_s),
        upper_bound=datetime.now(timezone.utc).replace(microsecond=0),
        scheduler_interval=(_as_utc(interval[0]), _as_utc(interval[1])) if interval else None,
    )


def package_limits(package_size: int, package_megabytes: float) -> PackageLimits:
    """When a resource's load package is full, checked."""
    return PackageLimits(at_least_one("package_size", package_size), positive("package_megabytes", package_megabytes))
