"""Timestamps as STAC writes them (RFC 3339) and as this source keeps them: aware datetimes, UTC where a value
names no offset."""

from __future__ import annotations

from datetime import datetime, timezone

import pendulum


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime; one without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        lenient = pendulum.parse(value, exact=True)  # formats Python 3.10's fromisoformat lacks
        if not isinstance(lenient, datetime):
            raise ValueError(f"{value!r} is a date or time, not a timestamp") from None
        parsed = lenient
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def rfc3339(value: datetime | None) -> str:
    """A timestamp as an interval end of STAC's `datetime` parameter writes it: `Z` for UTC, `..` for none."""
    return ".." if value is None else value.isoformat().replace("+00:00", "Z")


def optional_timestamp(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)
