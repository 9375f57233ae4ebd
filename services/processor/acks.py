"""Which acks to send for settled deliveries of one channel (pure: unit-tested without servers).

One `basic.ack` per message cost more CPU than a no-op job's SQL. A channel's delivery tags grow
in delivery order, so the settled deliveries below every still-unsettled one are acknowledged
by a single ack with `multiple=True`; a delivery settled behind one still running (a slow job of
another batch) is acked alone at once, so a slow job never holds back the prefetch credit of
others. A delivery that was never settled is never covered by a `multiple` ack: its message
stays unacked and the broker redelivers it if the channel closes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class AckPlan:
    """The frames to send, in this order: rejects, then one multiple ack, then single acks."""

    rejects: list[int] = field(default_factory=list)
    ack_up_to: int | None = None  # basic.ack(tag, multiple=True)
    acks: list[int] = field(default_factory=list)  # basic.ack(tag, multiple=False)


class Unsettled:
    """The delivery tags of one channel not yet acked or rejected, in delivery order."""

    def __init__(self) -> None:
        self._tags: dict[int, None] = {}  # insertion-ordered = tag order

    def __len__(self) -> int:
        return len(self._tags)

    def delivered(self, tag: int) -> None:
        self._tags[tag] = None

    def settle(self, acks: Iterable[int], rejects: Iterable[int] = ()) -> AckPlan:
        """Forgets the given tags and says how to settle them with the fewest frames."""
        plan = AckPlan()
        for tag in rejects:
            if self._tags.pop(tag, 0) is None:
                plan.rejects.append(tag)
        settled = [tag for tag in acks if self._tags.pop(tag, 0) is None]
        oldest = next(iter(self._tags), None)  # the lowest tag still unsettled
        below = [tag for tag in settled if oldest is None or tag < oldest]
        if below:
            plan.ack_up_to = max(below)
        plan.acks = sorted(tag for tag in settled if oldest is not None and tag > oldest)
        return plan
