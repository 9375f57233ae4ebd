"""Pure numbers: percentiles, the median of repeats, rates, and ratios between two throughputs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; NaN if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def quantiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of durations given in seconds, plus the sample count."""
    return {
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "samples": float(len(seconds)),
    }


def median_of(values: Sequence[float]) -> float:
    """The median of repeated measurements, ignoring NaN (a repeat that measured nothing)."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def rate(count: int, seconds: float) -> float:
    """Items per second; NaN when no time elapsed (nothing to divide by)."""
    return count / seconds if seconds > 0 else math.nan


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs; NaN when either is missing or theirs is zero."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return ours / theirs


def per_thousand(cpu_seconds: float, jobs: int) -> float:
    """CPU seconds per 1,000 jobs."""
    return cpu_seconds * 1000 / jobs if jobs > 0 else math.nan


def spread(values: Sequence[float]) -> float:
    """(max - min) / min over finite values: how far a per-job cost moved across scales."""
    finite = [v for v in values if not math.isnan(v)]
    if len(finite) < 2 or min(finite) <= 0:
        return math.nan
    return (max(finite) - min(finite)) / min(finite)


@dataclass(frozen=True)
class Throughput:
    """A run's size and durations; the rates every result row shows."""

    mode: str
    jobs: int
    submit_seconds: float
    end_to_end_seconds: float

    @property
    def submit_rate(self) -> float:
        return rate(self.jobs, self.submit_seconds)

    @property
    def end_to_end_rate(self) -> float:
        return rate(self.jobs, self.end_to_end_seconds)
