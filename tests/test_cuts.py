"""The pure part of planning a run's reading (`planning/cuts.py`, `planning/checkpoints.py`), without a server:
windows cut and bundled, collections asked about in groups, and a checkpoint written to a resource's state and
read back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dlt_stac.planning.checkpoints import Checkpoint, Part
from dlt_stac.planning.cursor_fields import DATETIME, UPDATED_NAME, CursorField
from dlt_stac.planning.cuts import any_of, bundled, collections_per_search, cut_points, groups_of
from dlt_stac.planning.windows import Cursor, Window

UPDATED = CursorField(UPDATED_NAME, None)
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def window(start: float | None = None, end: float | None = None) -> Window:
    return Window(None if start is None else at(start), None if end is None else at(end), False)


def test_cut_points_divide_the_items_span_in_whole_seconds_strictly_inside_the_window() -> None:
    assert cut_points(window(0, 10), at(0), at(8), 4) == [at(2), at(4), at(6)]
    assert cut_points(window(3, 10), at(0), at(8), 4) == [at(4), at(6)], "a point at or before the start is left out"
    assert cut_points(window(), at(0), at(0.5) + timedelta(microseconds=900), 2) == [at(0.25)], "whole seconds"
    assert cut_points(window(), at(0), at(0) + timedelta(seconds=1), 4) == [at(0)], "points of one second are one"
    assert cut_points(window(), None, at(8), 4) == []
    assert cut_points(window(), at(8), at(8), 4) == []


def test_small_windows_are_bundled_by_cursor_field_up_to_a_page_and_a_number_of_collections() -> None:
    windows = [(name, DATETIME, window(0, 1)) for name in "abcde"] + [
        ("u1", UPDATED, window()),
        ("u2", UPDATED, window()),
    ]
    counted = {"a": 40, "b": 50, "c": 20, "d": 100, "e": None, "u1": 3, "u2": 4}

    bundles, others = bundled(windows, counted, page_size=100, collections_at_most=3)

    assert [[name for name, _, _ in bundle] for bundle in bundles] == [["a", "b"], ["u1", "u2"]]
    assert [name for name, _, _ in others] == ["e", "c", "d"], "uncounted, then windows left alone in a bundle"
    bundles, _ = bundled(windows, {**counted, "c": 1, "d": 1}, page_size=100, collections_at_most=3)
    assert [[name for name, _, _ in bundle] for bundle in bundles][0] == ["a", "b", "c"], "three at most"


def test_collections_are_asked_about_in_groups_each_with_its_own_condition() -> None:
    conditions = {f"c{n}": {"op": "=", "args": [{"property": "n"}, n]} for n in range(7)}

    groups = groups_of(conditions, 3)

    assert [list(group) for group in groups] == [["c0", "c1", "c2"], ["c3", "c4", "c5"], ["c6"]]
    assert any_of({"c6": conditions["c6"]}) == {
        "op": "and", "args": [{"op": "=", "args": [{"property": "collection"}, "c6"]}, conditions["c6"]]
    }  # fmt: skip
    assert [arg["args"][0]["args"][1] for arg in any_of(groups[0])["args"]] == ["c0", "c1", "c2"]
    assert any_of(groups[0])["op"] == "or"
    assert (collections_per_search("POST"), collections_per_search("GET")) == (25, 10)


def test_a_checkpoint_reads_back_as_it_was_written() -> None:
    parts = [Part(window(0, 5).split([at(2)])[0], Cursor(at(1), {"x", "y"})), Part(window(2, 5).split([])[0])]
    checkpoint = Checkpoint(Cursor(at(1), {"x", "y"}), parts, UPDATED_NAME, Cursor(at(3), {"z"}), True)

    state = checkpoint.to_state()

    assert Checkpoint.from_state(state) == checkpoint
    assert state["parts"][0] == {
        "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T02:00:00Z", "end_excluded": True,
        "read_to": {"value": "2024-01-01T01:00:00Z", "ids": ["x", "y"]},
    }  # fmt: skip
    assert Checkpoint().to_state() == {}, "nothing loaded and nothing to read: no checkpoint"
