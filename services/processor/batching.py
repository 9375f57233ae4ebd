"""How a micro-batch of work messages is split up (pure: unit-tested without servers).

A batch locks its jobs' rows together, so it may hold each job once: a second message for the
same job (a redelivery racing a retry, a duplicate publish) waits for the batch to finish and is
then handled alone, under the same delivery rules. Among the rest, the ones whose row says RUN
take the set-based fast path; every other decision goes through the one-message path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Split(Generic[T]):
    first: list[T]  # at most one item per key, in arrival order
    repeats: list[T]  # later items for a key already in `first`, in arrival order


def first_per_key(items: Iterable[T], key: Callable[[T], str]) -> Split[T]:
    seen: set[str] = set()
    first: list[T] = []
    repeats: list[T] = []
    for item in items:
        k = key(item)
        (repeats if k in seen else first).append(item)
        seen.add(k)
    return Split(first, repeats)
