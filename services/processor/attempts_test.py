"""The attempts of a batch, run side by side: quick ones concluded together, a slow or stuck
one never holding back the others, leases renewed for those still running."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from observatory.jobs.v1 import job_pb2

from services.jobtypes.registry import JobContext, JobError
from services.processor.attempts import Attempt, AttemptPool


def attempt(key: int, function: Any, timeout: float = 30.0) -> Attempt:
    ctx = JobContext(
        job_id=f"job-{key}", attempt=1, max_attempts=3, deadline=time.monotonic() + timeout
    )
    return Attempt(key, function, ctx, {})


def instant(_ctx: JobContext, _payload: Mapping[str, Any]) -> None:
    return None


def failing(_ctx: JobContext, _payload: Mapping[str, Any]) -> None:
    raise JobError("boom", retryable=False)


def test_quick_attempts_end_in_one_wave_with_their_outcomes() -> None:
    pool = AttemptPool(8)
    try:
        waves = list(
            pool.run(
                [attempt(n, instant if n != 3 else failing) for n in range(6)],
                linger_s=1.0,
                interval=10,
                heartbeat=lambda keys: None,
            )
        )
    finally:
        pool.close()
    assert len(waves) == 1
    outcomes = dict(waves[0])
    assert sorted(outcomes) == list(range(6))
    assert outcomes[3].outcome == job_pb2.ATTEMPT_OUTCOME_FAILED
    assert not outcomes[3].retryable
    assert {outcomes[n].outcome for n in (0, 1, 2, 4, 5)} == {job_pb2.ATTEMPT_OUTCOME_SUCCEEDED}


def test_a_slow_attempt_does_not_hold_back_the_others_and_gets_its_lease_renewed() -> None:
    release = threading.Event()
    renewed: list[list[int]] = []

    def slow(ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        release.wait(10)

    pool = AttemptPool(4)
    try:
        waves = pool.run(
            [attempt(0, slow), attempt(1, instant), attempt(2, instant)],
            linger_s=0.2,
            interval=0.05,
            heartbeat=renewed.append,
        )
        first = next(waves)
        assert sorted(key for key, _ in first) == [1, 2]  # concluded while 0 still runs
        threading.Timer(0.5, release.set).start()  # meanwhile the pool renews 0's lease
        rest = list(waves)
    finally:
        release.set()
        pool.close()
    assert renewed and all(keys == [0] for keys in renewed)
    assert [key for wave in rest for key, _ in wave] == [0]


def test_a_function_ignoring_its_deadline_is_given_up_and_the_pool_still_works() -> None:
    stuck = threading.Event()

    def ignores_deadline(ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        stuck.wait(30)

    pool = AttemptPool(1)
    try:
        started = time.monotonic()
        (wave,) = pool.run(
            [attempt(0, ignores_deadline, timeout=0.1)],
            linger_s=0,
            interval=10,
            heartbeat=lambda keys: None,
        )
        assert time.monotonic() - started < 10
        ((key, result),) = wave
        assert (key, result.outcome) == (0, job_pb2.ATTEMPT_OUTCOME_TIMED_OUT)
        # The only thread of the old pool is stuck; the replacement runs new attempts.
        (again,) = pool.run(
            [attempt(1, instant)], linger_s=0, interval=10, heartbeat=lambda keys: None
        )
        assert [(k, r.outcome) for k, r in again] == [(1, job_pb2.ATTEMPT_OUTCOME_SUCCEEDED)]
    finally:
        stuck.set()
        pool.close()


def test_slow_attempts_all_run_side_by_side_up_to_the_pool_size() -> None:
    # Each waits until all 12 are running at once: a pool running fewer at a time times out.
    together = threading.Barrier(12, timeout=5)

    def meets_the_others(_ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        together.wait()

    pool = AttemptPool(12)
    try:
        waves = list(
            pool.run(
                [attempt(n, meets_the_others) for n in range(12)],
                linger_s=0.5,
                interval=10,
                heartbeat=lambda keys: None,
            )
        )
    finally:
        pool.close()
    outcomes = {key: result.outcome for wave in waves for key, result in wave}
    assert outcomes == dict.fromkeys(range(12), job_pb2.ATTEMPT_OUTCOME_SUCCEEDED)


def test_an_attempt_raising_a_base_exception_fails_and_the_next_still_runs() -> None:
    def exits(_ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        raise SystemExit(3)

    pool = AttemptPool(1)  # one thread: the second attempt runs after the first on it
    try:
        waves = list(
            pool.run(
                [attempt(0, exits), attempt(1, instant)],
                linger_s=0.5,
                interval=10,
                heartbeat=lambda keys: None,
            )
        )
    finally:
        pool.close()
    outcomes = {key: result for wave in waves for key, result in wave}
    assert outcomes[0].outcome == job_pb2.ATTEMPT_OUTCOME_FAILED
    assert outcomes[0].error == "SystemExit(3)"
    assert outcomes[1].outcome == job_pb2.ATTEMPT_OUTCOME_SUCCEEDED


def test_attempts_not_started_when_the_pool_closes_never_start() -> None:
    release, first_running = threading.Event(), threading.Event()
    ran: list[int] = []

    def blocks(_ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        first_running.set()
        release.wait(10)

    def records(ctx: JobContext, _payload: Mapping[str, Any]) -> None:
        ran.append(int(ctx.job_id.removeprefix("job-")))

    pool = AttemptPool(1)
    waves = pool.run(
        [attempt(0, blocks), attempt(1, records), attempt(2, records)],
        linger_s=0,
        interval=10,
        heartbeat=lambda keys: None,
    )
    runner = threading.Thread(target=lambda: next(waves))
    runner.start()
    assert first_running.wait(5)
    pool.close()  # the service stops: 1 and 2 are left for redelivery
    release.set()
    runner.join(5)
    time.sleep(0.2)
    assert ran == []


def test_a_closed_pool_refuses_a_batch() -> None:
    pool = AttemptPool(2)
    pool.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        next(pool.run([attempt(0, instant)], linger_s=0, interval=10, heartbeat=lambda k: None))
