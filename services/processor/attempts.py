"""Running the attempts of a micro-batch side by side on reusable threads, supervised by the
batch's own thread: lease renewals, deadlines, and endings grouped into waves.

A thread per attempt (and one more to supervise it) cost more than a no-op job itself; here the
job functions run on a pool whose threads are reused. Python cannot kill a thread, so a function
that ignores its deadline is given up (TIMED_OUT, its later result ignored) and the pool is
replaced, leaving the stuck thread behind, as `runner.run_attempt` does for one attempt.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from observatory.jobs.v1 import job_pb2

from services.jobtypes.registry import JobContext, JobFunction
from services.processor.runner import OVERRUN_GRACE_SECONDS, AttemptResult, call

Ending = tuple[int, AttemptResult]  # (the attempt's key, how it ended)


@dataclass(frozen=True)
class Attempt:
    key: int
    function: JobFunction
    ctx: JobContext
    payload: Mapping[str, Any]
    started: float = field(default_factory=time.monotonic)


class AttemptPool:
    def __init__(self, size: int) -> None:
        self._size = size
        self._executor = self._new_executor()

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="job")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def run(
        self,
        attempts: Sequence[Attempt],
        *,
        linger_s: float,
        interval: float,
        heartbeat: Callable[[list[int]], None],
    ) -> Iterator[list[Ending]]:
        """Starts every attempt; yields waves of endings: each waits for one ending, then takes
        those that follow within `linger_s` (quick jobs are concluded together, a slow one never
        holds back the others). Every `interval` s, `heartbeat` gets the keys still running."""
        ended: queue.SimpleQueue[Ending] = queue.SimpleQueue()
        running = {attempt.key: attempt for attempt in attempts}
        for attempt in attempts:
            future = self._executor.submit(call, attempt.function, attempt.ctx, attempt.payload)
            future.add_done_callback(partial(_report, ended, attempt.key))
        next_beat = time.monotonic() + interval
        abandoned = False
        try:
            while running:
                overdue_at = min(a.ctx.deadline + OVERRUN_GRACE_SECONDS for a in running.values())
                wave = _collect(ended, min(next_beat, overdue_at), linger_s, len(running))
                # A late ending of an attempt already given up is ignored.
                done = [(key, result) for key, result in wave if running.pop(key, None)]
                now = time.monotonic()
                for key, attempt in list(running.items()):
                    if now > attempt.ctx.deadline + OVERRUN_GRACE_SECONDS:
                        attempt.ctx.cancelled.set()  # ask it to stop; its result is ignored
                        del running[key]
                        abandoned = True
                        done.append((key, _overran(now - attempt.started)))
                if done:
                    yield done
                if running and time.monotonic() >= next_beat:
                    heartbeat(list(running))
                    next_beat = time.monotonic() + interval
        finally:
            if abandoned:  # its stuck thread stays behind in the old pool
                self._executor.shutdown(wait=False)
                self._executor = self._new_executor()


def _collect(
    ended: queue.SimpleQueue[Ending], until: float, linger_s: float, most: int
) -> list[Ending]:
    """The endings available by monotonic time `until`, plus those within `linger_s` of the
    first (at most `most`)."""
    try:
        wave = [ended.get(timeout=max(until - time.monotonic(), 0))]
    except queue.Empty:
        return []
    linger_until = time.monotonic() + linger_s
    while len(wave) < most:
        try:
            wave.append(ended.get(timeout=max(linger_until - time.monotonic(), 0)))
        except queue.Empty:
            break
    return wave


def _report(ended: queue.SimpleQueue[Ending], key: int, done: Future[AttemptResult]) -> None:
    if done.cancelled():  # the pool closed at shutdown: the message is left for redelivery
        return
    error = done.exception()
    if error is not None:  # `call` catches Exception; anything else is still a failed attempt
        ended.put((key, AttemptResult(job_pb2.ATTEMPT_OUTCOME_FAILED, repr(error))))
    else:
        ended.put((key, done.result()))


def _overran(seconds: float) -> AttemptResult:
    return AttemptResult(
        job_pb2.ATTEMPT_OUTCOME_TIMED_OUT, "timed out (the function did not stop)", seconds=seconds
    )
