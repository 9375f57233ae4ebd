"""PostgreSQL connections (psycopg 3), bounded in time even when the server is frozen."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow


def connect(
    dsn: str,
    *,
    autocommit: bool = False,
    application_name: str | None = None,
    timeout: float = 10.0,
    statement_timeout: float | None = None,
) -> psycopg.Connection[TupleRow]:
    """Opens a connection from a libpq DSN or postgresql:// URL. `timeout` bounds the connection
    set-up; `statement_timeout` (seconds) has the server cancel any longer statement, e.g. one
    stuck behind a lock (a frozen server enforces nothing: see `deadline`)."""
    options: dict[str, Any] = {"connect_timeout": max(1, round(timeout))}
    if statement_timeout is not None:
        options["options"] = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
    conninfo = make_conninfo(dsn, application_name=application_name, **options)
    return psycopg.connect(conninfo, autocommit=autocommit)


def _break(conn: psycopg.Connection[Any]) -> None:
    """Shuts the connection's socket down: a read blocked on it returns at once."""
    with contextlib.suppress(OSError, psycopg.Error):
        broken = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            broken.shutdown(socket.SHUT_RDWR)
        finally:
            broken.close()


class _Watchdog:
    """Breaks the connections whose unit of work outlived its deadline: one thread for the
    process, asleep until the earliest deadline it knows of. Watching a unit of work costs a
    dict entry, not a thread: a threading.Timer each cost ~0.12 ms of CPU, as much as a query.

    Deadlines of one pool all have the same length, so a new one is almost never the earliest:
    the thread is woken only when it slept with nothing to watch, or would sleep past the new
    one. A unit of work that ended is forgotten at once; the thread may still wake at its old
    deadline, finds nothing due, and sleeps on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watched: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._tokens = itertools.count()
        self._wakes_at = math.inf  # when the thread looks next (inf: asleep, nothing watched)
        self._thread: threading.Thread | None = None

    def watch(self, conn: psycopg.Connection[Any], seconds: float) -> int:
        expires = time.monotonic() + seconds
        with self._lock:
            token = next(self._tokens)
            self._watched[token] = (expires, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pg-deadlines", daemon=True)
                self._thread.start()
            if expires < self._wakes_at:
                self._wakes_at = expires
                self._changed.notify()
        return token

    def forget(self, token: int) -> None:
        with self._lock:
            self._watched.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token, (expires, conn) in list(self._watched.items()):
                    if expires <= now:
                        del self._watched[token]
                        _break(conn)
                self._wakes_at = min((e for e, _ in self._watched.values()), default=math.inf)
                self._changed.wait(None if math.isinf(self._wakes_at) else self._wakes_at - now)


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def deadline(conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
    """Breaks `conn` when the work inside lasts more than `seconds`, so a call blocked on a server
    that stopped answering fails with psycopg.OperationalError instead of waiting for it.

    Neither statement_timeout (enforced by the server) nor TCP keepalives (answered by the
    server's kernel) notice a frozen server; shutting the socket down wakes the blocked read.
    The connection is unusable afterwards: callers must close it, as after any error."""
    token = _WATCHDOG.watch(conn, seconds)
    try:
        yield
    finally:
        _WATCHDOG.forget(token)
