"""Splitting a micro-batch: each job once per batch, repeats kept in order for afterwards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.processor.batching import first_per_key


def test_a_repeated_job_waits_for_the_batch() -> None:
    items = [(0, "a"), (1, "b"), (2, "a"), (3, "c"), (4, "b"), (5, "a")]
    split = first_per_key(items, key=lambda item: item[1])
    assert split.first == [(0, "a"), (1, "b"), (3, "c")]
    assert split.repeats == [(2, "a"), (4, "b"), (5, "a")]


@given(st.lists(st.sampled_from("abcde")))
def test_every_item_is_kept_once_and_first_has_unique_keys(keys: list[str]) -> None:
    items = list(enumerate(keys))
    split = first_per_key(items, key=lambda item: item[1])
    assert sorted(split.first + split.repeats) == items
    assert len({key for _, key in split.first}) == len(split.first)
    assert {key for _, key in split.first} == set(keys)
    assert split.first == sorted(split.first)  # arrival order kept
    assert split.repeats == sorted(split.repeats)
