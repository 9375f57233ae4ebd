"""Running the attempts of a micro-batch side by side on reusable threads, supervised by the
batch's own thread: lease renewals, deadlines, and endings grouped into waves.

A thread per attempt (and one more to supervise it) cost more than a no-op job itself; here the
job functions run on a pool whose threads are reused. A batch's attempts wait in one queue, taken
by runners on the pool's threads one attempt after another; a runner that takes an attempt while
others still wait starts one more runner (up to the pool's size), so slow attempts still run side
by side, while quick ones are run by a few threads without a future, a condition and a thread
wake-up each (that was most of a no-op attempt's cost). Python cannot kill a thread, so a
function that ignores its deadline is given up (TIMED_OUT, its later result ignored) and the pool
is replaced, leaving the stuck thread behind, as `runner.run_attempt` does for one attempt.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


@dataclass
class _Queued:
    """The attempts of one `run` not yet started, and how many runners take them."""

    waiting: deque[Attempt]
    ended: queue.SimpleQueue[Ending]
    runners: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def another_runner(self, most: int) -> bool:
        """Counts one more runner if attempts still wait and fewer than `most` take them."""
        with self.lock:
            if self.waiting and self.runners < most:
                self.runners += 1
                return True
            return False


class AttemptPool:
    def __init__(self, size: int) -> None:
        self._size = size
        self._closed = threading.Event()
        self._executor = self._new_executor()

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="job")

    def close(self) -> None:
        """Attempts not started yet are never started: their messages are redelivered."""
        self._closed.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _add_runner(self, queued: _Queued) -> None:
        """Raises RuntimeError if the pool is closed (as ThreadPoolExecutor.submit does)."""
        if queued.another_runner(self._size):
            self._executor.submit(self._take, queued)

    def _take(self, queued: _Queued) -> None:
        """A runner: runs waiting attempts one after another until none waits (or the pool
        closes); on taking its first one while others still wait, it starts one more runner."""
        first = True
        while not self._closed.is_set():
            try:
                attempt = queued.waiting.popleft()
            except IndexError:
                return
            if first:
                first = False
                # Closed meanwhile: no more runners, and this one still runs what it took.
                with contextlib.suppress(RuntimeError):
                    self._add_runner(queued)
            try:
                result = call(attempt.function, attempt.ctx, attempt.payload)
            except BaseException as error:  # `call` catches Exception: still a failed attempt
                result = AttemptResult(job_pb2.ATTEMPT_OUTCOME_FAILED, repr(error))
            queued.ended.put((attempt.key, result))

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
        self._add_runner(_Queued(deque(attempts), ended))
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


def _overran(seconds: float) -> AttemptResult:
    return AttemptResult(
        job_pb2.ATTEMPT_OUTCOME_TIMED_OUT, "timed out (the function did not stop)", seconds=seconds
    )
