"""PostgreSQL connections (psycopg 3), bounded in time even when the server is frozen."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
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


@contextlib.contextmanager
def deadline(conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
    """Breaks `conn` when the work inside lasts more than `seconds`, so a call blocked on a server
    that stopped answering fails with psycopg.OperationalError instead of waiting for it.

    Neither statement_timeout (enforced by the server) nor TCP keepalives (answered by the
    server's kernel) notice a frozen server; shutting the socket down wakes the blocked read.
    The connection is unusable afterwards: callers must close it, as after any error."""
    lock, done = threading.Lock(), [False]

    def expire() -> None:
        with lock:
            if done[0]:
                return
            with contextlib.suppress(OSError, psycopg.Error):
                broken = socket.socket(fileno=os.dup(conn.pgconn.socket))
                try:
                    broken.shutdown(socket.SHUT_RDWR)
                finally:
                    broken.close()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done[0] = True
        timer.cancel()
