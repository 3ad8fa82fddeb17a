"""`read_concurrently` without a server: every item once in each stream's order, the first error raised, and an
early stop that stops the streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from dlt_stac.server.paging import read_concurrently


def counting(name: str, count: int) -> Iterator[str]:
    for index in range(count):
        yield f"{name}{index}"


def test_every_item_comes_once_in_the_order_of_its_stream() -> None:
    streams = [counting("a", 50), counting("b", 0), counting("c", 7), counting("d", 30)]

    read = list(read_concurrently(streams, concurrency=3))

    for index, name, count in [(0, "a", 50), (2, "c", 7), (3, "d", 30)]:
        assert [item for stream, item in read if stream == index] == [f"{name}{i}" for i in range(count)]
    assert len(read) == 87


def test_the_first_error_of_a_stream_is_raised_to_the_reader() -> None:
    def failing() -> Iterator[str]:
        yield "x0"
        raise ValueError("page 2 is broken")

    with pytest.raises(ValueError, match="page 2 is broken"):
        list(read_concurrently([counting("a", 3), failing()], concurrency=2))


def test_an_early_stop_stops_the_streams() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            index = 0
            while True:
                yield index
                index += 1
        finally:
            closed.set()

    reading = read_concurrently([endless()], concurrency=1)
    assert [item for _, item in (next(reading), next(reading))] == [0, 1]
    reading.close()

    assert closed.wait(5), "the stream was not stopped"
