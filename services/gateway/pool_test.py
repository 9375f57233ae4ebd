"""The gateway's connection pool against a real PostgreSQL whose backend stops answering."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from services.common import postgres
from services.gateway.pool import Pool
from tools.testing.servers import PostgresServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The backend process serving one connection, stopped as a hung server would be."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_query_on_a_frozen_server_fails_within_the_deadline_and_the_pool_recovers(
    postgres_server: PostgresServer,
) -> None:
    pool = Pool(postgres_server.info.dsn, timeout=TIMEOUT_S)
    try:
        with pool.connection() as conn:
            backend = conn.info.backend_pid
            conn.execute("SELECT 1")
            conn.commit()
        began = time.monotonic()
        with (
            frozen(backend),
            pytest.raises(psycopg.OperationalError),
            pool.connection() as conn,
        ):
            assert conn.info.backend_pid == backend  # the idle connection, reused
            conn.execute("SELECT 1")
        waited = time.monotonic() - began
        assert waited < 10 * TIMEOUT_S, waited  # bounded (2 x timeout), not the outage
        # The broken connection was dropped: the next unit of work gets a fresh one.
        with pool.connection() as conn:
            assert conn.info.backend_pid != backend
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.commit()
    finally:
        pool.close()


def test_a_deadline_that_is_not_reached_leaves_the_connection_usable(
    postgres_server: PostgresServer,
) -> None:
    with postgres.connect(postgres_server.info.dsn, statement_timeout=5) as conn:
        with postgres.deadline(conn, 0.5):
            conn.execute("SELECT 1")
        time.sleep(0.8)  # past the deadline: nothing may fire after the work ended
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
