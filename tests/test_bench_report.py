"""The bench's report: which growth target a run of d is held to."""

from __future__ import annotations

import pytest

from bench.measure import Measurement
from bench.report import rss_growth


def runs_of_d(peak_rss_mb: float) -> list[dict[str, Measurement]]:
    return [{"d-duckdb": Measurement("d. ours -> DuckDB", 1, 1.0, 1.0, peak_rss_mb, {})}]


@pytest.mark.parametrize(
    ("items", "peak", "verdict"),
    [
        (1_000_000, 650, "PASS peak RSS of d / baseline 600 MB (100k) <= 1.1: 1.08"),
        (1_000_000, 700, "FAIL peak RSS of d / baseline 600 MB (100k) <= 1.1: 1.17"),
        (100_000, 700, "PASS peak RSS of d / baseline 600 MB (10k) <= 1.3: 1.17"),
    ],
)
def test_a_million_items_are_held_to_a_tenth_more_than_100k_and_100k_to_three_tenths_more_than_10k(
    items: int, peak: float, verdict: str
) -> None:
    assert rss_growth(runs_of_d(peak), 600, items) == verdict


def test_without_a_baseline_the_report_says_which_run_to_take_it_from() -> None:
    said = rss_growth(runs_of_d(700), None, 1_000_000)

    assert said == (
        "(not checked) peak RSS of d at 1M / at 100k <= 1.1: pass the 100k run's d peak RSS, "
        "e.g. `make bench ITEMS=1000000 RUNS=1 BENCH_RSS_BASELINE=<MB>`"
    )
    assert rss_growth(runs_of_d(700), None, 10_000).startswith("(not checked) peak RSS of d at 100k / at 10k <= 1.3")
