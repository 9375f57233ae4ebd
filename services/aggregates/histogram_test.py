"""The latency histogram's bucket math (pure): buckets, representatives, quantiles, error bound."""

from __future__ import annotations

from collections import Counter
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.aggregates.histogram import (
    ERROR,
    PERCENTILES,
    bucket_of,
    bucket_span,
    nearest_rank,
    percentiles,
    percentiles_of_sum,
    representative,
)

DAY_MS = 24 * 3600 * 1000
latencies = st.integers(min_value=0, max_value=DAY_MS)


def exact_percentile(samples: list[int], percent: int) -> int:
    """The reference: nearest-rank over the sorted samples themselves."""
    return sorted(samples)[nearest_rank(percent, len(samples)) - 1]


def within_bound(reported: int, exact: int) -> bool:
    return abs(reported - exact) <= ERROR * (exact + 1) + 0.5


@given(latencies)
def test_a_sample_lies_in_its_bucket_and_its_representative_is_close(ms: int) -> None:
    index = bucket_of(ms)
    lowest, highest = bucket_span(index)
    assert lowest <= ms <= highest
    assert lowest <= representative(index) <= highest  # never above the bucket's upper bound
    assert within_bound(representative(index), ms)


@given(latencies, latencies)
def test_buckets_keep_the_order_of_samples(a: int, b: int) -> None:
    if a <= b:
        assert bucket_of(a) <= bucket_of(b)
        assert representative(bucket_of(a)) <= representative(bucket_of(b))


def test_buckets_are_about_five_percent_wide_and_small_values_exact() -> None:
    for ms in range(20):
        assert representative(bucket_of(ms)) == ms
    for index in range(bucket_of(100), bucket_of(DAY_MS) + 1):
        lowest, highest = bucket_span(index)
        assert highest - lowest + 1 <= 0.05 * (highest + 1) + 1
        assert bucket_span(index + 1)[0] == highest + 1  # adjacent: no gaps, no overlaps
    assert bucket_of(DAY_MS) < 400  # a histogram is at most a few hundred fields
    assert bucket_of(-5) == 0  # clock skew: a negative latency counts as 0


def test_a_bucket_without_whole_milliseconds_has_no_representative() -> None:
    assert bucket_span(5)[0] > bucket_span(5)[1]
    with pytest.raises(ValueError, match="index"):
        representative(5)
    with pytest.raises(ValueError, match="index"):
        bucket_span(-1)


@given(st.lists(latencies, min_size=1, max_size=500))
def test_percentiles_from_counts_are_within_the_bound_of_exact_nearest_rank(
    samples: list[int],
) -> None:
    values, count = percentiles(Counter(bucket_of(ms) for ms in samples))
    assert count == len(samples)
    assert values == sorted(values)
    for percent, value in zip(PERCENTILES, values, strict=True):
        exact = exact_percentile(samples, percent)
        assert within_bound(value, exact), (percent, value, exact)
        assert bucket_of(value) == bucket_of(exact)  # the very bucket holding the exact one


def test_no_samples_give_zeros() -> None:
    assert percentiles({}) == ([0, 0, 0], 0)


def test_nearest_rank_uses_exact_arithmetic() -> None:
    assert [nearest_rank(p, 100) for p in PERCENTILES] == [50, 95, 99]
    assert nearest_rank(99, 1) == 1
    assert nearest_rank(50, 3) == 2
    with pytest.raises(ValueError, match="percent"):
        nearest_rank(0, 10)


@given(st.lists(latencies, max_size=200), st.lists(latencies, max_size=200))
def test_percentiles_of_a_sum_answer_like_percentiles_of_all_samples(
    settled: list[int], current: list[int]
) -> None:
    settled_counts = Counter(bucket_of(ms) for ms in settled)
    dense = [settled_counts.get(i, 0) for i in range(max(settled_counts, default=-1) + 1)]
    cumulative = list(accumulate(dense))
    current_counts = Counter(bucket_of(ms) for ms in current)
    expected = percentiles(Counter(bucket_of(ms) for ms in settled + current))
    assert percentiles_of_sum(cumulative, current_counts) == expected
