"""The benchmarks' pure statistics helpers (vxlan_evt/testing/bench/stats.py)."""

from __future__ import annotations

import math

import pytest

from vxlan_evt.testing.bench.stats import (
    Summary,
    format_ms,
    format_table,
    median,
    ns_to_ms,
    percentile,
    rate,
    ratio,
    summarize,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # order does not matter
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile([7.0], 99) == 7.0


def test_percentile_p99_of_a_hundred_values_is_near_the_top() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)
    assert median(values) == pytest.approx(50.5)


@pytest.mark.parametrize("q", [-1.0, 100.5])
def test_percentile_refuses_out_of_range_q(q: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], q)


def test_percentile_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summarize() -> None:
    summary = summarize([1.0, 2.0, 3.0, 10.0])
    assert summary is not None
    assert (summary.n, summary.max, summary.mean) == (4, 10.0, 4.0)
    assert summary.p50 == pytest.approx(2.5)
    assert summarize([]) is None


def test_ratio_and_rate_edge_cases() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) == math.inf
    assert rate(10_000, 0.5) == 20_000
    assert rate(1, 0.0) == math.inf
    assert ns_to_ms([1_500_000, 0]) == [1.5, 0.0]


def test_format_ms() -> None:
    assert format_ms(Summary(n=3, p50=0.123, p99=12.34, max=1234.5, mean=1.0)) == "0.12/12.3/1234"
    assert format_ms(None) == "-"


def test_format_table_pads_columns() -> None:
    table = format_table(["a", "bb"], [["xxx", "y"], ["z", "wwww"]])
    assert table.splitlines() == ["a    bb", "---  ----", "xxx  y", "z    wwww"]
    with pytest.raises(ValueError, match="cells"):
        format_table(["a"], [["1", "2"]])
