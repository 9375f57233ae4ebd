"""Grouped acks: fewer frames, and never an ack for a delivery that was not settled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.processor.acks import AckPlan, Unsettled


class Broker:
    """A channel's unacked tags as RabbitMQ keeps them; an unknown tag closes the channel."""

    def __init__(self, tags: range) -> None:
        self.unacked = set(tags)

    def apply(self, plan: AckPlan) -> None:
        for tag in plan.rejects:
            self.unacked.remove(tag)
        if plan.ack_up_to is not None:
            assert plan.ack_up_to in self.unacked, "unknown delivery tag"
            self.unacked = {tag for tag in self.unacked if tag > plan.ack_up_to}
        for tag in plan.acks:
            self.unacked.remove(tag)


def delivered(tags: range) -> Unsettled:
    unsettled = Unsettled()
    for tag in tags:
        unsettled.delivered(tag)
    return unsettled


def test_a_settled_prefix_is_one_multiple_ack() -> None:
    plan = delivered(range(1, 101)).settle(range(1, 101))
    assert plan == AckPlan(ack_up_to=100)


def test_deliveries_behind_an_unsettled_one_are_acked_alone_and_it_stays_unacked() -> None:
    tags = range(1, 7)
    unsettled, broker = delivered(tags), Broker(tags)
    broker.apply(unsettled.settle([1, 2, 4], rejects=[5]))
    assert broker.unacked == {3, 6}
    broker.apply(unsettled.settle([6]))
    assert broker.unacked == {3}
    broker.apply(unsettled.settle([3]))
    assert broker.unacked == set()


def test_settling_a_tag_twice_sends_nothing_the_second_time() -> None:
    unsettled = delivered(range(1, 3))
    unsettled.settle([1])
    assert unsettled.settle([1]) == AckPlan()


@given(st.data(), st.integers(min_value=1, max_value=40))
def test_exactly_the_settled_deliveries_are_acked_in_any_order(
    data: st.DataObject, count: int
) -> None:
    tags = range(1, count + 1)
    unsettled, broker = delivered(tags), Broker(tags)
    order = data.draw(st.permutations(list(tags)))
    kept = data.draw(st.integers(min_value=0, max_value=count))  # never settled
    settled: set[int] = set()
    position = 0
    while position < count - kept:
        size = data.draw(st.integers(min_value=1, max_value=count - kept - position))
        group = order[position : position + size]
        rejects = data.draw(st.lists(st.sampled_from(group), unique=True))
        acks = [tag for tag in group if tag not in rejects]
        broker.apply(unsettled.settle(acks, rejects))
        settled |= set(group)
        position += size
        assert broker.unacked == set(tags) - settled
    assert len(unsettled) == kept
