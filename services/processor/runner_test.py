"""How an attempt ends: every way a job function can finish is classified, never raised."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from observatory.jobs.v1 import job_pb2

from services.jobtypes.registry import JobContext, JobError
from services.processor.runner import run_attempt


def context(timeout: float = 5.0) -> JobContext:
    return JobContext("job", attempt=1, max_attempts=3, deadline=time.monotonic() + timeout)


def run(function: Any, ctx: JobContext | None = None, interval: float = 0.05) -> Any:
    beats: list[float] = []
    result = run_attempt(
        function, ctx or context(), {}, heartbeat=lambda: beats.append(1), interval=interval
    )
    return result, len(beats)


def test_success_and_failures_are_classified() -> None:
    def ok(ctx: JobContext, payload: Mapping[str, Any]) -> None:
        return None

    def final(ctx: JobContext, payload: Mapping[str, Any]) -> None:
        raise JobError("bad input", retryable=False)

    def crash(ctx: JobContext, payload: Mapping[str, Any]) -> None:
        raise ZeroDivisionError("oops")

    assert run(ok)[0].outcome == job_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    failed = run(final)[0]
    assert (failed.outcome, failed.retryable, failed.error) == (
        job_pb2.ATTEMPT_OUTCOME_FAILED,
        False,
        "bad input",
    )
    crashed = run(crash)[0]
    assert crashed.outcome == job_pb2.ATTEMPT_OUTCOME_FAILED
    assert crashed.retryable
    assert "ZeroDivisionError" in crashed.error


def test_a_long_attempt_renews_its_lease_and_honours_cancel() -> None:
    ctx = context()
    threading.Timer(0.3, ctx.cancelled.set).start()
    result, beats = run(lambda c, p: c.sleep(10), ctx)
    assert result.outcome == job_pb2.ATTEMPT_OUTCOME_CANCELLED
    assert beats >= 3
    assert result.seconds < 2


def test_timeouts_stop_cooperative_and_abandon_stuck_functions() -> None:
    result, _ = run(lambda c, p: c.sleep(10), context(timeout=0.2))
    assert result.outcome == job_pb2.ATTEMPT_OUTCOME_TIMED_OUT
    assert result.retryable
    stuck = threading.Event()
    started = time.monotonic()
    result, _ = run(lambda c, p: stuck.wait(10), context(timeout=0.1))
    stuck.set()
    assert result.outcome == job_pb2.ATTEMPT_OUTCOME_TIMED_OUT
    assert time.monotonic() - started < 3
