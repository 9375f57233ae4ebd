"""Retry delays: exponential, capped, jittered within 20 %, few distinct values."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from services.processor.retry import retry_delay_ms, round_significant


def test_rounding_keeps_two_significant_figures() -> None:
    assert round_significant(1234) == 1200
    assert round_significant(1250.1) == 1300
    assert round_significant(87) == 87
    assert round_significant(0.2) == 1


def test_delays_double_per_attempt_until_the_cap() -> None:
    delays = [retry_delay_ms(k, base_ms=1000, max_ms=60_000, rand=lambda: 0.5) for k in range(1, 9)]
    assert delays == [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]


@given(
    attempt=st.integers(1, 100),
    base=st.integers(1, 10_000),
    cap_factor=st.integers(1, 1000),
    rand=st.floats(0, 1),
)
def test_delays_stay_within_jitter_and_cap(
    attempt: int, base: int, cap_factor: int, rand: float
) -> None:
    cap = base * cap_factor
    delay = retry_delay_ms(attempt, base_ms=base, max_ms=cap, rand=lambda: rand)
    raw = min(cap, base * 2 ** min(attempt - 1, 62))
    assert 1 <= delay <= cap
    # 20 % jitter, plus up to 5 % from rounding to two figures (and 1 ms for tiny delays).
    assert raw * 0.8 * 0.95 - 1 <= delay <= raw * 1.2 * 1.05 + 1


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def test_the_number_of_distinct_delays_is_bounded() -> None:
    seen = {
        retry_delay_ms(k, base_ms=1000, max_ms=60_000, rand=fixed(r / 100))
        for k in range(1, 20)
        for r in range(101)
    }
    assert len(seen) < 200
