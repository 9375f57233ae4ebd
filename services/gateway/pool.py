"""A small PostgreSQL connection pool: request threads reuse idle connections.

psycopg_pool is not in the lock; this is all the gateway needs. A connection that saw an
error is closed rather than returned, so a restarted server costs one failed request at most.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from services.common import postgres


class Pool:
    def __init__(self, dsn: str, *, timeout: float, max_idle: int = 8) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one unit of work; psycopg.OperationalError when the server is down."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            # statement_timeout bounds a statement stuck behind a lock: a 503, not a hang.
            conn = postgres.connect(
                self._dsn,
                application_name="gateway",
                timeout=self._timeout,
                statement_timeout=self._timeout,
            )
        try:
            # A unit of work waits on the database and, for submissions, on broker confirms,
            # each bounded by the timeout: past both, the server is frozen, not slow.
            with postgres.deadline(conn, 2 * self._timeout):
                yield conn
        except BaseException:
            conn.close()
            raise
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()  # left mid-transaction: not reusable
            return
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
