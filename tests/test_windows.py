"""Incremental windows without a server: where a run's window lies, how it is split, which items it admits, and
how the cursor moves."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dlt_stac.planning.cursor_fields import DATETIME
from dlt_stac.planning.windows import Cursor, Window, WindowFilter, WindowSettings, plan_window
from dlt_stac.server.capabilities import IDS_BYTES_AT_MOST

UTC = timezone.utc
T0, T1, T2, T3 = (datetime(2024, 1, day, tzinfo=UTC) for day in (1, 2, 3, 4))
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def settings(**given: object) -> WindowSettings:
    return WindowSettings(**{"since": None, "until": None, "lag": timedelta(0), "upper_bound": NOW, **given})  # type: ignore[arg-type]


def test_a_first_run_reads_from_since_to_the_upper_bound_and_later_runs_from_the_cursor_less_lag() -> None:
    assert plan_window(Cursor(), settings(since=T0)) == Window(T0, NOW, stateless=False, end_excluded=True)
    after_cursor = Window(T1, NOW, stateless=False, end_excluded=True)
    assert plan_window(Cursor(T2, {"a"}), settings(since=T0, lag=timedelta(days=1))) == after_cursor
    assert plan_window(Cursor(T2, {"a"}), settings(since=T3)) == Window(T3, NOW, stateless=False, end_excluded=True)


def test_until_and_a_schedulers_interval_are_stateless_windows() -> None:
    assert plan_window(Cursor(T2, {"a"}), settings(since=T0, until=T1)) == Window(T0, T1, stateless=True)
    interval = settings(scheduler_interval=(T1, T3), since=T0)
    # half-open: the item at exactly T3 is the next interval's
    assert plan_window(Cursor(T2, {"a"}), interval) == Window(T1, T3, stateless=True, end_excluded=True)


def test_a_new_window_never_overlaps_the_parts_an_interrupted_run_left() -> None:
    assert plan_window(Cursor(T0, {"a"}), settings(), not_before=T2) == Window(T2, NOW, False, end_excluded=True)


def test_a_split_window_gives_each_item_to_exactly_one_part() -> None:
    parts = Window(T0, T3, stateless=False).split([T1, T2])

    assert [(part.start, part.end, part.end_excluded) for part in parts] == [
        (T0, T1, True),
        (T1, T2, True),
        (T2, T3, False),
    ]
    for value in (T0, T1, T1 + timedelta(seconds=1), T2, T3):
        assert sum(WindowFilter(part).admits(value, "x") for part in parts) == 1, value


def test_the_last_part_of_a_split_keeps_the_windows_excluded_end() -> None:
    parts = Window(T0, T3, stateless=False, end_excluded=True).split([T1])

    assert [part.end_excluded for part in parts] == [True, True]
    assert not WindowFilter(parts[-1]).admits(T3, "x")


def test_a_searchs_own_end_is_inclusive_where_it_cuts_the_incremental_window() -> None:
    incremental = Window(T0, NOW, stateless=False, end_excluded=True)

    assert incremental.clamped(None, T2) == Window(T0, T2, stateless=False, end_excluded=False)
    assert incremental.clamped(T1, None) == Window(T1, NOW, stateless=False, end_excluded=True)


def test_the_filter_skips_items_loaded_at_the_start_and_honours_an_excluded_end() -> None:
    admits = WindowFilter(Window(T1, T2, stateless=False, end_excluded=True), frozenset({"old"})).admits

    assert [admits(T0, "new"), admits(T1, "old"), admits(T1, "new"), admits(T2, "new")] == [False, False, True, False]
    assert WindowFilter(Window(T1, T2, stateless=False)).admits(T2, "new")


def test_the_cursor_keeps_the_highest_datetime_and_every_id_on_it() -> None:
    cursor = Cursor()
    for value, item_id in [(T1, "a"), (T0, "b"), (T1, "c"), (T2, "d"), (T2, "e"), (T1, "f")]:
        cursor.advance(value, item_id)

    assert cursor == Cursor(T2, {"d", "e"})
    assert cursor.to_state() == {"value": "2024-01-03T00:00:00Z", "ids": ["d", "e"]}
    assert Cursor.from_state(cursor.to_state()) == cursor
    assert Cursor.from_state({}) == Cursor() and Cursor().to_state() == {}


def test_a_window_leaves_out_the_ids_loaded_at_its_start_while_they_fit_in_a_request_body() -> None:
    window = Window(T1, NOW, stateless=False, end_excluded=True)
    few = frozenset(f"item-{number:05d}" for number in range(100))
    many = frozenset(f"item-with-a-long-name-{number:07d}" for number in range(30_000))  # ~1 MB of ids
    asked = {"datetime": "2024-01-02T00:00:00Z/2024-06-01T00:00:00Z"}
    left_out = DATETIME.search_parameters(window, few, IDS_BYTES_AT_MOST["POST"])
    assert {key: left_out[key] for key in asked} == asked
    assert sorted(left_out["filter"]["args"][0]["args"][1]["args"][1]) == sorted(few)
    assert DATETIME.search_parameters(window, many, IDS_BYTES_AT_MOST["POST"]) == asked
    some = frozenset(f"item-{number:05d}" for number in range(300))  # 4.2 KB of ids: too many for a GET URL
    assert "filter" in DATETIME.search_parameters(window, some, IDS_BYTES_AT_MOST["POST"])
    assert DATETIME.search_parameters(window, some, IDS_BYTES_AT_MOST["GET"]) == asked
