"""Quantiles of latency samples, computed on read (nearest-rank: always an observed value)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(sorted_samples: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (0 < q <= 1) of ascending samples; 0 for no samples."""
    if not 0 < q <= 1:
        raise ValueError(f"q: expected 0 < q <= 1, got {q}")
    if not sorted_samples:
        return 0.0
    rank = math.ceil(q * len(sorted_samples))
    return sorted_samples[max(rank, 1) - 1]


def summary(samples: Sequence[float]) -> tuple[float, float, float, int]:
    """(p50, p95, p99, count) of unsorted samples."""
    ordered = sorted(samples)
    return (
        quantile(ordered, 0.50),
        quantile(ordered, 0.95),
        quantile(ordered, 0.99),
        len(ordered),
    )
