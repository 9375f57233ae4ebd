"""Two scenarios for every backend, mid-stream for OUTAGE_S: frozen (a hung server), or stopped
and started again (a real restart). The services that need it report not-ready meanwhile, then
the pipeline catches up with every store in agreement.

A restarted MongoDB or Redis holds back only its own metrics-engine queue: that queue's backlog
grows while the other store keeps storing (MongoDB down: live stats keep counting, timelines lag;
Redis down: timelines keep filling, stats lag)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.aggregates.store import PREFIX
from services.common import mongo, redis_store
from services.common.topology import AGGREGATES_QUEUE, EVENT_STORE_QUEUE
from services.metrics_engine.documents import COLLECTION, DATABASE
from tests.faults.consistency import check_consistency
from tests.faults.observe import ReadinessWatch, queue_backlog
from tests.faults.outages import frozen, restarted
from tests.faults.stack import Stack
from tests.faults.stream import JobStream, accepted_after_refusal
from tools.testing.servers import Server
from tools.testing.waiting import wait_for

JOBS = 5000
OUTAGE_S = 10.0
RESTART_RATE = 125.0  # jobs/s: 40 s of stream, the stop begins ~4 s in
# The metrics-engine queue each store consumes: a store's outage holds back only its own.
STORE_QUEUES = {"mongo": EVENT_STORE_QUEUE, "redis": AGGREGATES_QUEUE}


def freeze_mid_stream(stack: Stack, server: Server[Any], dependants: Sequence[str]) -> None:
    """`dependants`: keys of `stack.services` that must report not-ready during the outage."""
    stream = JobStream(stack.gateway.info.grpc_target, stack.gateway.info.url, total=JOBS)
    urls = {name: stack.services[name].info.url for name in dependants}
    began = time.monotonic()
    with ReadinessWatch(urls) as watch:
        stream.start()
        try:
            stream.wait_accepted(JOBS // 4, timeout=180)
            with frozen(server):
                down = time.monotonic()
                time.sleep(OUTAGE_S)
            up = time.monotonic()
            print(
                f"{server.name} frozen for {up - down:.1f}s at {stream.accepted_count()} accepted"
            )
            stream.wait(timeout=300)
        finally:
            stream.stop()
        _wait_ready_again(watch, dependants, up)
    _assert_not_ready(watch, dependants, down, up, "during the outage")
    assert not [answer for answer in stream.answers if answer.kind == "error"]
    refused = [answer for answer in stream.answers if answer.kind == "unavailable"]
    print(f"gateway refusals during the run: {len(refused)}; slowest answer: {stream.slowest()}")
    check_consistency(
        stack, stream.job_ids(), keys=stream.keys(), expect_status="completed", timeout=240
    )
    print(f"all stores agree {time.monotonic() - began:.0f}s after the first submit")


def restart_mid_stream(
    stack: Stack, name: str, dependants: Sequence[str], *, refuses_submissions: bool
) -> None:
    """Backend `name` stopped for OUTAGE_S mid-stream and started again on the same ports and
    data. `dependants` must report not-ready meanwhile; `refuses_submissions`: the gateway needs
    this backend to accept a job, so it must answer UNAVAILABLE / 503 and accept nothing."""
    # Paced so the stream outlasts a slow graceful stop (RabbitMQ's took up to 22 s under CI
    # load): submissions must still be arriving while the server is down.
    stream = JobStream(
        stack.gateway.info.grpc_target, stack.gateway.info.url, total=JOBS, rate=RESTART_RATE
    )
    urls = {key: stack.services[key].info.url for key in dependants}
    with ReadinessWatch(urls) as watch:
        stream.start()
        try:
            stream.wait_accepted(JOBS // 10, timeout=180)
            stopping = time.monotonic()
            with restarted(stack, name) as down:
                print(
                    f"{name} stopped in {down - stopping:.1f}s, {stream.accepted_count()} accepted"
                )
                # Events pile up on the queue of a metrics-engine store that is away (its
                # consumer stops acking); the other store's consumer goes on.
                time.sleep(2.0)
                progress = [_engine_progress(stack, name)]
                time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))
                progress.append(_engine_progress(stack, name))
                restarting = time.monotonic()
                down_seen = stream.answers_between(down, restarting)
            up = time.monotonic()
            print(
                f"{name} down {restarting - down:.1f}s, new server ready in {up - restarting:.1f}s"
            )
            accepted_before = stream.accepted_count()
            wait_for(
                stream.accepted_count,
                until=lambda count: count > accepted_before or count == JOBS,
                what=f"the gateway to accept jobs again after {name} came back",
                timeout=120,
            )
            print(f"accepting again {time.monotonic() - up:.1f}s after {name} came back")
            stream.wait(timeout=300)
        finally:
            stream.stop()
        _wait_ready_again(watch, dependants, up)
    for key in dependants:
        ready = watch.first_ready_after(key, up)
        print(f"{key} ready {(ready or up) - up:.1f}s after {name} came back")
    _assert_not_ready(watch, dependants, down, restarting, f"while {name} was down")
    refused = [answer for answer in down_seen if answer.kind == "unavailable"]
    # Sent once the server was down (an answer received then may have been sent before).
    accepted_while_down = [a for a in down_seen if a.kind == "accepted" and a.at - a.took >= down]
    print(
        f"while {name} was down: {len(refused)} refusals {sorted({a.detail for a in refused})}, "
        f"{len(accepted_while_down)} acceptances; slowest answer of the run: {stream.slowest()}"
    )
    if name in STORE_QUEUES:
        _assert_only_its_queue_held(name, progress)
    if refuses_submissions:
        assert refused, f"no UNAVAILABLE/503 while {name} was down; answers: {down_seen}"
        # PostgreSQL down: nothing can commit. Broker down: the submits that committed before
        # the gateway saw the outage stand (outbox), none after its first refusal.
        late = accepted_while_down if name == "postgres" else accepted_after_refusal(down_seen)
        assert not late, f"accepted with {name} down: {late}"
    else:
        assert accepted_while_down, f"submissions stopped while {name} was down: {down_seen}"
    assert not [answer for answer in stream.answers if answer.kind == "error"]
    check_consistency(
        stack, stream.job_ids(), keys=stream.keys(), expect_status="completed", timeout=240
    )
    print(f"all stores agree {time.monotonic() - up:.0f}s after {name} came back")


def _wait_ready_again(watch: ReadinessWatch, dependants: Sequence[str], up: float) -> None:
    wait_for(
        lambda: all(watch.ready_after(key, up) for key in dependants),
        what=f"{', '.join(dependants)} to be ready again",
        timeout=60,
    )


def _assert_not_ready(
    watch: ReadinessWatch, dependants: Sequence[str], start: float, end: float, when: str
) -> None:
    """Every dependant answered /readyz with something other than 200 between start and end."""
    for key in dependants:
        seen = watch.statuses(key, start, end)
        print(f"{key} /readyz {when}: {seen}")
        assert any(status != 200 for status in seen), f"{key} stayed ready: {seen}"


@dataclass(frozen=True)
class EngineProgress:
    """The metrics engine during a store outage: the backlog of the down store's queue, and how
    far the other store has got (events counted in Redis, or documents in MongoDB)."""

    held_backlog: int
    other_store: int


def _engine_progress(stack: Stack, down: str) -> EngineProgress | None:
    if down not in STORE_QUEUES:
        return None
    return EngineProgress(
        queue_backlog(stack.rabbitmq.info, STORE_QUEUES[down]), _other_store_count(stack, down)
    )


def _other_store_count(stack: Stack, down: str) -> int:
    if down == "mongo":  # every event the aggregates counted
        redis = redis_store.connect(stack.redis.info.url)
        try:
            return sum(int(n) for n in redis.hgetall(PREFIX + "totals").values())
        finally:
            redis.close()
    with mongo.connect(stack.mongo.info.url) as client:
        return int(client[DATABASE][COLLECTION].estimated_document_count())


def _assert_only_its_queue_held(down: str, progress: Sequence[EngineProgress | None]) -> None:
    """The down store's queue grew over the outage while the other store kept advancing."""
    first, last = progress
    assert first is not None and last is not None
    other = "aggregates (Redis events counted)" if down == "mongo" else "MongoDB documents"
    print(
        f"{STORE_QUEUES[down]} backlog 2 s into the outage and at its end:"
        f" {first.held_backlog} -> {last.held_backlog}; {other}: {first.other_store} ->"
        f" {last.other_store}"
    )
    assert last.held_backlog > first.held_backlog, (
        f"{STORE_QUEUES[down]} kept being consumed with {down} down: {progress}"
    )
    assert last.other_store > first.other_store, f"{other} stopped with {down} down: {progress}"
