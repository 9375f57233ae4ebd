"""PostgreSQL connections kept open between read-model calls.

Opening a connection costs far more than a read-model query: measured on the dev box, ~2 ms of
CPU here and ~10 ms in PostgreSQL (a backend process forked and authenticated) against ~0.25 ms
for a query on an open one. A connection goes back to the pool only after a call that ended
cleanly (committed, not broken); any error closes it. A server restart leaves the idle ones
stale: a pooled connection that fails at once is taken as stale, every idle one is dropped and
the work runs once more on a new connection, so a restart costs no caller an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import pq

from services.common import postgres
from services.jobstore import store

T = TypeVar("T")

# A pooled connection failing within this long failed on its first round trip: stale, not slow.
STALE_FAILURE_S = 1.0


class ConnectionPool:
    """Thread-safe; each connection is used by one call at a time."""

    def __init__(
        self, connect: Callable[[], store.Conn], *, deadline_s: float, max_idle: int = 8
    ) -> None:
        self._connect = connect
        self._deadline_s = deadline_s  # breaks a call stuck on a frozen server (postgres.deadline)
        self._max_idle = max_idle
        self._idle: list[store.Conn] = []
        self._lock = threading.Lock()

    def run(self, work: Callable[[store.Conn], T]) -> T:
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

    def close(self) -> None:
        """Closes the idle connections (those in use close when their call ends with an error,
        or go back to the pool)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> store.Conn | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _use(self, conn: store.Conn, work: Callable[[store.Conn], T]) -> T:
        try:
            with postgres.deadline(conn, self._deadline_s):
                result = work(conn)
                conn.commit()
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return result

    def _give_back(self, conn: store.Conn) -> None:
        reusable = not conn.broken and conn.info.transaction_status == pq.TransactionStatus.IDLE
        if reusable:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        conn.close()
