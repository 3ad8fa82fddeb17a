"""The source's arguments checked where they are used: a bad value is an error that names its key."""

from __future__ import annotations

from .errors import StacSourceError


def at_least_one(key: str, value: int) -> int:
    """`value` if it is a whole number of 1 or more, else an error that names `key`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StacSourceError(f"`{key}` must be a whole number of 1 or more, got {value!r}")
    return value


def one_of(key: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` in upper case if it is one of `choices`, else an error that names `key`."""
    if not isinstance(value, str) or value.upper() not in choices:
        raise StacSourceError(f"`{key}` must be one of {', '.join(choices)}, got {value!r}")
    return value.upper()


def positive(key: str, value: float) -> float:
    """`value` if it is a number above 0, else an error that names `key`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise StacSourceError(f"`{key}` must be a number above 0, got {value!r}")
    return float(value)
