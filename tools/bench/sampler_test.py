"""The detail sampler's polling: one unanswered GetJobDetail per tick, visible samples resolved
in order, ticks stretched by how long the oldest sample has waited (unit: a fake read model)."""

from __future__ import annotations

import time
from typing import Any

import grpc
from observatory.events.v1 import event_pb2
from observatory.readmodel.v1 import read_model_pb2

from tools.bench import ours


class FakeReadModel:
    """GetJobDetail shows a terminal event (occurred one second ago) for the jobs in `visible`."""

    def __init__(self) -> None:
        self.visible: set[str] = set()
        self.calls: list[str] = []

    def GetJobDetail(  # noqa: N802 - the gRPC method's name
        self, request: read_model_pb2.GetJobDetailRequest, timeout: float
    ) -> read_model_pb2.GetJobDetailResponse:
        self.calls.append(request.job_id)
        response = read_model_pb2.GetJobDetailResponse()
        if request.job_id in self.visible:
            event = response.events.add(event_type=event_pb2.EVENT_TYPE_JOB_COMPLETED)
            event.occurred_at.FromNanoseconds(int((time.time() - 1) * 1e9))
        return response


def sampler_with(jobs: list[str]) -> tuple[ours.DetailSampler, FakeReadModel]:
    fake = FakeReadModel()
    sampler = ours.DetailSampler(fake)  # type: ignore[arg-type]  # duck-typed stub
    for job_id in jobs:
        sampler.add(job_id)
    return sampler, fake


def test_a_tick_polls_only_the_oldest_while_it_is_not_visible() -> None:
    sampler, fake = sampler_with(["a", "b", "c"])
    fake.visible = {"b", "c"}  # finished out of order: still measured, when "a" is
    sampler.tick()
    assert fake.calls == ["a"]
    assert sampler.pending() == 3
    assert sampler.freshness == []


def test_visible_samples_are_resolved_in_order_in_one_tick() -> None:
    sampler, fake = sampler_with(["a", "b", "c"])
    fake.visible = {"a", "b"}
    sampler.tick()
    assert fake.calls == ["a", "b", "c"]
    assert sampler.pending() == 1
    assert len(sampler.freshness) == 2
    assert all(0.9 < seconds < 5 for seconds in sampler.freshness)  # occurred ~1 s ago


def test_the_tick_stretches_with_the_oldest_samples_wait() -> None:
    sampler, _ = sampler_with([])
    assert sampler.tick() == ours.DETAIL_POLL_SECONDS  # nothing pending
    sampler.add("young")
    assert sampler.tick() == ours.DETAIL_POLL_SECONDS
    lagging, _ = sampler_with([])
    lagging.add("old", accepted_at=time.monotonic() - 20)
    assert lagging.tick() >= 20 * ours.DETAIL_POLL_SHARE  # 1 s: not 50 polls a second


def test_an_unanswered_poll_leaves_the_sample_pending() -> None:
    class Failing(FakeReadModel):
        def GetJobDetail(self, request: Any, timeout: float) -> Any:  # noqa: N802
            self.calls.append(request.job_id)
            raise grpc.RpcError()

    fake = Failing()
    sampler = ours.DetailSampler(fake)  # type: ignore[arg-type]
    sampler.add("a")
    sampler.tick()
    assert fake.calls == ["a"]
    assert sampler.pending() == 1


def test_a_run_samples_one_job_in_a_hundred_between_10_and_50() -> None:
    def samples(jobs: int) -> int:
        return len(range(0, jobs, ours.detail_sample_every(jobs)))

    assert samples(1_000) == 10  # the small run: the bench's polls stay a small share of it
    assert samples(10_000) == 50
    assert samples(100_000) == 50
    assert samples(3) == 3  # fewer jobs than the floor: each is sampled
