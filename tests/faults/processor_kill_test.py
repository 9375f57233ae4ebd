"""A processor SIGKILLed mid-stream, twice at different points: no accepted job is lost, none
completes twice, and every store counts each job exactly once."""

from __future__ import annotations

import functools
import os
import signal
import time

import pytest

from services.common import postgres
from tests.faults.consistency import check_consistency
from tests.faults.stack import Stack
from tests.faults.stream import JobStream
from tools.testing.stack.services import ServiceProcess
from tools.testing.waiting import wait_for

pytestmark = [pytest.mark.integration]

JOBS = 5000


def wait_until_holding_work(stack: Stack, victim: ServiceProcess) -> int:
    """Until the victim has an attempt RUNNING (its identity is host:pid:name); returns how many.

    Polled every 5 ms on one connection: with batched commits, a processor holds a RUNNING row
    for only a few ms per batch, which a slower poll can miss for the whole stream."""
    holder = f"%:{victim.pid}:%"
    with postgres.connect(stack.postgres.info.dsn, autocommit=True) as conn:

        def held() -> int:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE status = 'running' AND worker LIKE %s", (holder,)
            ).fetchone()
            return int(row[0]) if row else 0

        return wait_for(
            held, what=f"processor {victim.pid} to hold work", timeout=60, interval=0.005
        )


def dead(process: ServiceProcess) -> bool:
    return not process.alive()


def test_sigkilled_processors_lose_and_duplicate_nothing(stack: Stack) -> None:
    stream = JobStream(stack.gateway.info.grpc_target, stack.gateway.info.url, total=JOBS)
    began = time.monotonic()
    stream.start()
    try:
        for victim_index, point in ((0, JOBS // 5), (1, JOBS * 3 // 5)):
            stream.wait_accepted(point, timeout=180)
            victim = stack.processors[victim_index]
            # Kill it while it holds work, so that work is abandoned and must be taken over.
            held = wait_until_holding_work(stack, victim)
            os.kill(victim.pid, signal.SIGKILL)
            wait_for(functools.partial(dead, victim), what="the processor to die", timeout=10)
            print(
                f"SIGKILLed processor {victim_index + 1} holding {held} running jobs,"
                f" at {stream.accepted_count()} accepted"
            )
            stack.start_processor()
        stream.wait(timeout=240)
    finally:
        stream.stop()
    print(f"{JOBS} jobs accepted in {time.monotonic() - began:.0f}s")
    check_consistency(
        stack, stream.job_ids(), keys=stream.keys(), expect_status="completed", timeout=240
    )
    print(f"all stores agree {time.monotonic() - began:.0f}s after the first submit")
    assert not [answer for answer in stream.answers if answer.kind == "error"]
