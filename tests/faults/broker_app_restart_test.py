"""The RabbitMQ application stopped and started mid-stream (`rabbitmqctl stop_app`/`start_app`,
the Erlang VM stays up): the gateway answers UNAVAILABLE / 503 while the broker is
away, accepts again once it is back, and no job it accepted is lost or counted twice."""

from __future__ import annotations

import time

import pytest

from tests.faults.consistency import check_consistency
from tests.faults.observe import ReadinessWatch
from tests.faults.outages import broker_stopped
from tests.faults.stack import Stack
from tests.faults.stream import JobStream, accepted_after_refusal
from tools.testing.waiting import wait_for

pytestmark = [pytest.mark.integration]

JOBS = 5000
OUTAGE_S = 10.0


def test_broker_app_restart_mid_stream_loses_no_accepted_job(stack: Stack) -> None:
    stream = JobStream(stack.gateway.info.grpc_target, stack.gateway.info.url, total=JOBS)
    services = {"gateway": stack.gateway.info.url, "processor": stack.processors[0].info.url}
    with ReadinessWatch(services) as watch:
        stream.start()
        try:
            stream.wait_accepted(JOBS // 4, timeout=180)
            with broker_stopped(stack.rabbitmq):
                down = time.monotonic()
                time.sleep(OUTAGE_S)
                down_seen = stream.answers_between(down, time.monotonic())
            up = time.monotonic()
            print(
                f"broker stopped at {len(stream.job_ids())} accepted; back after {up - down:.1f}s"
            )
            accepted_before = stream.accepted_count()
            wait_for(
                stream.accepted_count,
                until=lambda count: count > accepted_before,
                what="the gateway to accept jobs again after the broker came back",
                timeout=120,
            )
            print(f"accepting again {time.monotonic() - up:.1f}s after the broker came back")
            stream.wait(timeout=300)
        finally:
            stream.stop()
        wait_for(
            lambda: watch.ready_after("gateway", up) and watch.ready_after("processor", up),
            what="gateway and processor to be ready again",
            timeout=60,
        )

    refused = [a for a in down_seen if a.kind == "unavailable"]
    assert refused, f"no UNAVAILABLE/503 while the broker was down; answers: {down_seen}"
    # Requests sent once the broker was down (an answer received then may have been sent before).
    # Submits that committed before the gateway saw the outage stand (their messages wait in
    # the outbox and are checked below like every other job); none after its first refusal.
    late = accepted_after_refusal(down_seen)
    assert not late, f"accepted after refusing, with no broker: {late}"
    assert watch.not_ready_between("gateway", down, up), watch.samples["gateway"]
    assert watch.not_ready_between("processor", down, up), watch.samples["processor"]
    print(f"during the outage: {len(refused)} refusals ({sorted({a.detail for a in refused})})")
    assert not [answer for answer in stream.answers if answer.kind == "error"]
    check_consistency(
        stack, stream.job_ids(), keys=stream.keys(), expect_status="completed", timeout=240
    )
