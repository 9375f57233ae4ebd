"""Pure derivations from what a run recorded: when each job became visible in the stats."""

from __future__ import annotations

from collections.abc import Sequence


def stats_freshness(
    finished_at: Sequence[float], polls: Sequence[tuple[float, int]]
) -> list[float]:
    """Seconds from each job's terminal transition until the read model's stats counted it.

    `finished_at`: the run's terminal times (any order). `polls`: (received_at, terminal jobs of
    this run counted so far) in time order. The k-th job to finish is taken as visible at the
    first poll counting at least k jobs: counts only grow and say nothing about which job, so
    this attributes them in finishing order. Jobs never counted are left out.
    """
    ordered = sorted(finished_at)
    out: list[float] = []
    poll = 0
    for k, finished in enumerate(ordered, start=1):
        while poll < len(polls) and polls[poll][1] < k:
            poll += 1
        if poll == len(polls):
            break
        out.append(max(0.0, polls[poll][0] - finished))
    return out


def first_reaching(polls: Sequence[tuple[float, int]], count: int) -> float | None:
    """Time of the first poll whose count reached `count`, None if none did."""
    for received_at, seen in polls:
        if seen >= count:
            return received_at
    return None
