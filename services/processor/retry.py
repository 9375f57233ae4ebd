"""Retry delays: exponential in the attempt number, capped, jittered, and rounded so that the
number of distinct delays (one retry queue each) stays small."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

JITTER = 0.2  # +-20 %


def round_significant(value: float, digits: int = 2) -> int:
    """`value` rounded to `digits` significant figures (as an integer; at least 1)."""
    if value < 1:
        return 1
    step: int = 10 ** max(math.floor(math.log10(value)) + 1 - digits, 0)
    return max(1, round(value / step) * step)


def retry_delay_ms(
    attempt: int, *, base_ms: int, max_ms: int, rand: Callable[[], float] = random.random
) -> int:
    """Delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
    exponent = min(attempt - 1, 62)  # beyond that the cap applies anyway
    raw = min(max_ms, base_ms * 2**exponent)
    jittered = raw * (1 - JITTER + 2 * JITTER * rand())
    return min(max_ms, round_significant(jittered))
