"""Latency histograms with log-spaced buckets: constant-size state whatever the load.

A sample of `ms` milliseconds (an integer; negatives count as 0) goes to bucket
`ceil(log(ms + 1) / log(GROWTH))`, so bucket i holds the integers in (GROWTH**(i-1) - 1,
GROWTH**i - 1]: each bucket is 5% wide (relative to ms + 1). Below ~20 ms a bucket holds at
most one integer, so small latencies are exact. A day (8.64e7 ms) is bucket 375.

A bucket is reported as its representative: GROWTH**(i - 1/2) - 1 (the geometric middle of the
bucket in ms + 1) rounded and clamped to the integers the bucket holds, so never above its upper
bound. Error bound: for every sample v of bucket i, |representative(i) - v| <= ERROR * (v + 1)
+ 0.5 ms, with ERROR = sqrt(GROWTH) - 1 (~2.47%). Quantiles are nearest-rank over the bucket
counts, and the exact nearest-rank sample lies in the bucket found, so a reported quantile is
within the same bound of the exact one.

The Redis script (store.py) computes the same index with the same formula (both C doubles).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from functools import cache
from itertools import accumulate

GROWTH = 1.05
ERROR = math.sqrt(GROWTH) - 1  # relative to ms + 1, plus 0.5 ms for rounding to whole ms
PERCENTILES = (50, 95, 99)
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(ms: int) -> int:
    """The bucket of a sample of `ms` milliseconds."""
    if ms <= 0:
        return 0
    return math.ceil(math.log(ms + 1) / _LOG_GROWTH)


@cache
def bucket_span(index: int) -> tuple[int, int]:
    """(lowest, highest) ms the bucket holds; lowest > highest for the empty ones (1..14)."""
    if index < 0:
        raise ValueError(f"index: expected >= 0, got {index}")
    return _highest(index - 1) + 1, _highest(index)


def _highest(index: int) -> int:
    """The highest ms in bucket `index` or below (checked against bucket_of, so float rounding
    of GROWTH**index cannot put a boundary one off)."""
    if index < 0:
        return -1
    highest = math.floor(math.pow(GROWTH, index) - 1)
    while bucket_of(highest + 1) <= index:
        highest += 1
    while highest > 0 and bucket_of(highest) > index:
        highest -= 1
    return highest


@cache
def representative(index: int) -> int:
    """The value reported for a bucket: its geometric middle, within its span."""
    lowest, highest = bucket_span(index)
    if lowest > highest:
        raise ValueError(f"index: bucket {index} holds no whole milliseconds")
    middle = round(math.pow(GROWTH, index - 0.5) - 1)
    return min(max(middle, lowest), highest)


def percentiles(counts: Mapping[int, int]) -> tuple[list[int], int]:
    """([p50, p95, p99] in ms, sample count) of a histogram; zeros when it is empty."""
    total = sum(counts.values())
    if total == 0:
        return [0 for _ in PERCENTILES], 0
    ranks = [nearest_rank(percent, total) for percent in PERCENTILES]
    values: list[int] = []
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        while len(values) < len(ranks) and seen >= ranks[len(values)]:
            values.append(representative(index))
    return values, total


def percentiles_of_sum(
    cumulative: Sequence[int], extra: Mapping[int, int]
) -> tuple[list[int], int]:
    """percentiles() of the sum of two histograms: one given as its running total by index
    (cumulative[i] = samples in buckets 0..i, e.g. minutes that no longer change, summed once),
    the other as index -> count (e.g. the current minute). Binary searches instead of adding
    them up: a read model answers this several times a second."""
    indexes = sorted(extra)
    extra_cumulative = list(accumulate(map(extra.__getitem__, indexes)))
    settled = cumulative[-1] if cumulative else 0
    total = settled + (extra_cumulative[-1] if extra_cumulative else 0)
    if total == 0:
        return [0 for _ in PERCENTILES], 0

    def samples_up_to(index: int) -> int:
        below = cumulative[min(index, len(cumulative) - 1)] if cumulative else 0
        position = bisect_right(indexes, index)
        return below + (extra_cumulative[position - 1] if position else 0)

    values = []
    for percent in PERCENTILES:
        rank = nearest_rank(percent, total)
        low, high = 0, max(len(cumulative) - 1, indexes[-1] if indexes else 0)
        while low < high:  # the first index holding at least `rank` samples
            middle = (low + high) // 2
            if samples_up_to(middle) >= rank:
                high = middle
            else:
                low = middle + 1
        values.append(representative(low))
    return values, total


def nearest_rank(percent: int, total: int) -> int:
    """The 1-based rank of the percent-th percentile of `total` samples (integer arithmetic:
    0.95 * 100 in floats is 95.00000000000001, one rank too high)."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent: expected 0 < percent <= 100, got {percent}")
    return max(1, -(-percent * total // 100))
