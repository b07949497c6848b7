"""Pure helpers for the benchmarks: percentiles, summaries, ratios and table formatting.

No I/O, no clocks: the benchmarks feed measured numbers in and print what comes out.
Imported by the benchmark scripts in tools/bench as `vxlan_evt.testing.bench.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks.

    Same definition as numpy's default ("linear"): p0 is the minimum, p100 the
    maximum. ValueError for an empty sequence or q outside 0..100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of one measured series (same unit as the input)."""

    n: int
    p50: float
    p99: float
    max: float
    mean: float


def summarize(values: Sequence[float]) -> Summary | None:
    """p50/p99/max/mean of `values`; None when there are none."""
    if not values:
        return None
    return Summary(
        n=len(values),
        p50=percentile(values, 50),
        p99=percentile(values, 99),
        max=max(values),
        mean=sum(values) / len(values),
    )


def ratio(ours: float, reference: float) -> float:
    """ours / reference; inf when the reference is zero and ours is not, 1.0 for 0/0."""
    if reference == 0:
        return 1.0 if ours == 0 else math.inf
    return ours / reference


def ns_to_ms(values: Sequence[int]) -> list[float]:
    """Nanosecond durations as milliseconds."""
    return [v / 1e6 for v in values]


def rate(count: int, seconds: float) -> float:
    """Items per second; inf for a zero duration."""
    return math.inf if seconds <= 0 else count / seconds


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


def format_ms(summary: Summary | None) -> str:
    """ "p50/p99/max" in ms with adaptive precision, or "-" for no data."""
    if summary is None:
        return "-"
    return "/".join(_short(v) for v in (summary.p50, summary.p99, summary.max))


def _short(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with left-aligned, space-padded columns."""
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, header {len(header)}")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
