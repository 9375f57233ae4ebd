from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.bench import timeline


def test_each_job_is_visible_at_the_first_poll_that_counts_it() -> None:
    finished = [10.0, 10.1, 10.2]
    polls = [(10.05, 1), (10.15, 1), (10.30, 3)]
    assert timeline.stats_freshness(finished, polls) == pytest.approx([0.05, 0.2, 0.1])


def test_jobs_never_counted_are_left_out() -> None:
    assert timeline.stats_freshness([1.0, 2.0], [(1.5, 1)]) == [0.5]


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=50))
def test_freshness_is_never_negative_and_one_per_counted_job(finished: list[float]) -> None:
    polls = [(max(finished) + 0.01, len(finished))]
    fresh = timeline.stats_freshness(finished, polls)
    assert len(fresh) == len(finished)
    assert all(f >= 0 for f in fresh)


def test_first_poll_reaching_a_count() -> None:
    polls = [(1.0, 0), (2.0, 5), (3.0, 10)]
    assert timeline.first_reaching(polls, 5) == 2.0
    assert timeline.first_reaching(polls, 11) is None
