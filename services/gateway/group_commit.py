"""Group commit: concurrent requests that arrive while earlier groups are being written are
coalesced into one write (one transaction, one confirmed publish) for all of them.

Leader/follower, with no thread of its own: each caller queues its request and waits on its own
thread. Whenever fewer than `max_writers` groups are committing, a waiting caller becomes a
writer: it takes the requests at the head of the queue (oldest first, whole requests only, up to
`max_jobs` jobs, at least one request) and commits them with `commit` while the next group forms
behind it. Then it frees its writer slot and runs what `commit` left for after (`Written.then`:
the publish and its confirm wait, overlapping the next group's commit) before the callers get
their outcomes. An idle committer writes a lone request at once: no fixed delay is ever added.

`commit` gets the group's requests and returns one outcome per request, in order: a result, or
an exception for that caller alone; an exception raised by `commit` or `then` fails the whole
group. The group's write runs to its end on the writer's thread whatever its other callers do (a
caller's thread cannot be cut off mid-wait), so a caller that gave up never leaves a group
hanging.

The pure parts (`take`, `split`) are plain functions; the coordination is `GroupCommitter`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.gateway.config import GroupLimits

R = TypeVar("R")  # a request
T = TypeVar("T")  # one request's result
I = TypeVar("I")  # noqa: E741 (an item of a flat result list)


class ClosedError(RuntimeError):
    """The committer is closed (the gateway is stopping): the request was not written."""


def take(sizes: Sequence[int], max_jobs: int) -> int:
    """How many of the queued requests (their job counts `sizes`, oldest first) the next group
    takes: the longest prefix within `max_jobs`, but at least one request (a request is never
    split, and never skipped, so none starves behind smaller ones)."""
    if not sizes:
        return 0
    count, jobs = 1, sizes[0]
    while count < len(sizes) and jobs + sizes[count] <= max_jobs:
        jobs += sizes[count]
        count += 1
    return count


def split(items: Sequence[I], sizes: Sequence[int]) -> list[list[I]]:
    """`items` (a group's flat results, in request order) cut back into each request's share."""
    if sum(sizes) != len(items) or any(size < 0 for size in sizes):
        raise ValueError(f"{len(items)} items cannot be split into {list(sizes)}")
    shares, start = [], 0
    for size in sizes:
        shares.append(list(items[start : start + size]))
        start += size
    return shares


@dataclass(frozen=True)
class Written(Generic[T]):
    """What `commit` did with a group: one outcome per request (its result, or an exception for
    that caller alone), and what is left to do once the writer slot is free (the publish)."""

    outcomes: Sequence[T | Exception]
    then: Callable[[], None] = lambda: None


class _Waiting(Generic[R, T]):
    """One caller's request; its outcome is set, then `done`, under the committer's lock.

    Each caller waits on its own condition, woken alone: when its outcome is set, or when it
    heads the queue and a writer slot is free. (One condition for all woke every waiting caller
    at each group's commit and end: with a few dozen callers, most of the committer's CPU.)"""

    __slots__ = ("done", "error", "jobs", "request", "result", "wake")

    def __init__(self, request: R, jobs: int, lock: threading.Lock) -> None:
        self.request = request
        self.jobs = jobs
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.wake = threading.Condition(lock)


class GroupCommitter(Generic[R, T]):
    """Thread-safe; `run` blocks its caller until its request is written (or failed)."""

    def __init__(
        self,
        commit: Callable[[Sequence[R]], Written[T]],
        limits: GroupLimits,
        *,
        on_group: Callable[[int], None] = lambda jobs: None,
    ) -> None:
        self._commit = commit
        self._limits = limits
        self._on_group = on_group  # called with each group's job count, before its write
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # close() waits on it for the writes
        self._queue: deque[_Waiting[R, T]] = deque()
        self._committing = 0  # groups in their commit (at most max_writers)
        self._unfinished = 0  # groups taken whose callers have not had their outcomes yet
        self._closed = False

    def run(self, request: R, jobs: int) -> T:
        """Writes `request` (`jobs` jobs) in some group; its result, or raises its failure."""
        mine: _Waiting[R, T] = _Waiting(request, jobs, self._lock)
        with self._lock:
            if self._closed:
                raise ClosedError("not accepting requests: stopping")
            self._queue.append(mine)
        while True:
            with self._lock:
                group = self._next_group(mine)
                while group is None and not mine.done:
                    mine.wake.wait()
                    group = self._next_group(mine)
                if group is None:  # done, by this thread or another writer
                    break
            self._write(group)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]  # set with done when no error

    def queued(self) -> int:
        """Requests waiting for a writer (not yet in a group being written)."""
        with self._lock:
            return len(self._queue)

    def close(self, timeout: float) -> bool:
        """Refuses new requests, fails the queued ones (ClosedError) and waits up to `timeout`
        for the groups being written; False if some are still being written."""
        with self._lock:
            self._closed = True
            queued, self._queue = list(self._queue), deque()
            for waiting in queued:
                waiting.error = ClosedError("not written: stopping")
                waiting.done = True
                waiting.wake.notify()
            return self._settled.wait_for(lambda: self._unfinished == 0, timeout)

    def _next_group(self, mine: _Waiting[R, T]) -> list[_Waiting[R, T]] | None:
        """Under the lock: the group this thread is to write now, if a writer slot is free."""
        if mine.done or self._closed or not self._queue:
            return None
        if self._committing >= self._limits.max_writers:
            return None
        count = take([w.jobs for w in self._queue], self._limits.max_jobs)
        self._committing += 1
        self._unfinished += 1
        group = [self._queue.popleft() for _ in range(count)]
        self._wake_next_writer()  # another slot may still be free
        return group

    def _wake_next_writer(self) -> None:
        """Under the lock: the queue's head takes the next group if a writer slot is free."""
        if self._queue and self._committing < self._limits.max_writers:
            self._queue[0].wake.notify()

    def _write(self, group: list[_Waiting[R, T]]) -> None:
        """Writes a group and hands each caller its outcome; never leaves a caller waiting."""
        written: Written[T] | None = None
        failure: BaseException | None = None
        try:
            try:
                self._on_group(sum(w.jobs for w in group))
                written = self._commit([w.request for w in group])
                if len(written.outcomes) != len(group):
                    raise RuntimeError(f"{len(written.outcomes)} outcomes for {len(group)}")
            finally:
                with self._lock:  # committed (or failed): the next group may commit
                    self._committing -= 1
                    self._wake_next_writer()
            written.then()
        except BaseException as error:  # even an interrupt: release the group, then re-raise
            failure = error
        finally:
            with self._lock:
                for index, waiting in enumerate(group):
                    # No `written` means `commit` raised, so `failure` is set.
                    outcome = (
                        failure
                        if failure is not None or written is None
                        else written.outcomes[index]
                    )
                    if isinstance(outcome, BaseException):
                        waiting.error = outcome
                    else:
                        waiting.result = outcome
                    waiting.done = True
                    waiting.wake.notify()
                self._unfinished -= 1
                if self._unfinished == 0:
                    self._settled.notify_all()
        if failure is not None and not isinstance(failure, Exception):
            raise failure
