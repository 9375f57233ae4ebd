from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.bench import stats

durations = st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=200)


@given(durations)
def test_percentiles_are_ordered_and_within_the_samples(values: list[float]) -> None:
    p50, p95, p99 = (stats.percentile(values, q) for q in (50, 95, 99))
    assert min(values) <= p50 <= p95 <= p99 <= max(values)
    assert stats.percentile(values, 0) == min(values)
    assert stats.percentile(values, 100) == max(values)


def test_percentile_interpolates_between_ranks() -> None:
    assert stats.percentile([10.0, 20.0], 50) == 15.0
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_percentile_of_nothing_is_nan_and_a_bad_q_is_refused() -> None:
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError, match="q"):
        stats.percentile([1.0], 101)


def test_quantiles_are_reported_in_milliseconds_with_the_sample_count() -> None:
    q = stats.quantiles_ms([0.001, 0.002, 0.003])
    assert q["p50_ms"] == pytest.approx(2.0)
    assert q["samples"] == 3


def test_median_of_repeats_ignores_repeats_that_measured_nothing() -> None:
    assert stats.median_of([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(stats.median_of([math.nan]))


def test_rates_and_ratios_are_nan_rather_than_a_division_error() -> None:
    assert stats.rate(1000, 0.5) == 2000
    assert math.isnan(stats.rate(1000, 0))
    assert stats.ratio(3000, 1500) == 2
    assert math.isnan(stats.ratio(3000, 0))
    assert math.isnan(stats.ratio(math.nan, 10))


def test_cost_per_thousand_jobs_and_its_spread_across_scales() -> None:
    assert stats.per_thousand(2.5, 500) == 5.0
    assert stats.spread([10.0, 11.0, 12.0]) == pytest.approx(0.2)
    assert math.isnan(stats.spread([10.0]))
