"""PostgreSQL connections kept open between calls (the gateway's requests, the read model's
queries). psycopg_pool is not in the lock; this is all the services need.

Opening a connection costs far more than a query: measured on the dev box, ~2 ms of CPU here and
~10 ms in PostgreSQL (a backend process forked and authenticated) against ~0.25 ms for a query
on an open one. A connection goes back to the pool only after a unit of work that ended cleanly
(not broken, no transaction left open); any error closes it. Every unit of work runs under
`postgres.deadline`, so a frozen server breaks the connection instead of hanging the caller.

`run(work)` also survives a server restart: a pooled connection that fails at once is taken as
stale, every idle one is dropped and the work runs once more on a new connection, so a restart
costs no caller an error. Only for work that is safe to run twice (reads); `connection()` never
retries.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg import pq

from services.common import postgres

T = TypeVar("T")
Conn = psycopg.Connection[Any]

# A pooled connection failing within this long failed on its first round trip: stale, not slow.
STALE_FAILURE_S = 1.0


class ConnectionPool:
    """Thread-safe; each connection is used by one call at a time."""

    def __init__(
        self, connect: Callable[[], Conn], *, deadline_s: float, max_idle: int = 8
    ) -> None:
        self._connect = connect
        self._deadline_s = deadline_s  # breaks a call stuck on a frozen server (postgres.deadline)
        self._max_idle = max_idle
        self._idle: list[Conn] = []
        self._lock = threading.Lock()

    def run(self, work: Callable[[Conn], T]) -> T:
        """`work` on a connection, committed; raises what it or PostgreSQL raised."""
        conn = self._take()
        if conn is None:
            return self._use(self._connect(), work)
        began = time.monotonic()
        try:
            return self._use(conn, work)
        except psycopg.OperationalError:
            if time.monotonic() - began > STALE_FAILURE_S:
                raise  # a live server that failed or froze: do not wait for it twice
            self.close()  # the server went away since these were opened
            return self._use(self._connect(), work)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection for one unit of work whose transaction the caller manages (commit, or
        leave it rolled back); psycopg.OperationalError when the server is down."""
        conn = self._take() or self._connect()
        try:
            with postgres.deadline(conn, self._deadline_s):
                yield conn
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)

    def close(self) -> None:
        """Closes the idle connections (those in use close when their call ends with an error,
        or go back to the pool)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> Conn | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _use(self, conn: Conn, work: Callable[[Conn], T]) -> T:
        try:
            with postgres.deadline(conn, self._deadline_s):
                result = work(conn)
                conn.commit()
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return result

    def _give_back(self, conn: Conn) -> None:
        reusable = not conn.broken and conn.info.transaction_status == pq.TransactionStatus.IDLE
        if reusable:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        conn.close()
