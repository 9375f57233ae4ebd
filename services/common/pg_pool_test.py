"""The services' PostgreSQL pool against real servers: connections are reused, a failed call's
connection is not, a server restart costs no `run` caller an error, and a frozen server fails a
unit of work within its deadline."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from services.common import postgres
from services.common.pg_pool import Conn, ConnectionPool
from tools.testing.servers import PostgresServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration


def backend_pid(conn: Conn) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def pool_for(dsn: str) -> ConnectionPool:
    return ConnectionPool(lambda: postgres.connect(dsn, timeout=5), deadline_s=30)


def test_calls_reuse_one_connection_and_commit(postgres_server: PostgresServer) -> None:
    pool = pool_for(postgres_server.info.dsn)
    try:
        pool.run(lambda conn: conn.execute("CREATE TABLE t (n int)"))
        pool.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        with postgres.connect(postgres_server.info.dsn) as other:  # committed: others see it
            assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert len({pool.run(backend_pid) for _ in range(5)}) == 1
    finally:
        pool.close()


def test_a_failed_call_raises_and_its_connection_is_not_reused(
    postgres_server: PostgresServer,
) -> None:
    pool = pool_for(postgres_server.info.dsn)
    try:
        first = pool.run(backend_pid)

        def fails(conn: Conn) -> int:
            assert backend_pid(conn) == first
            conn.execute("SELECT 1/0")
            return 0

        with pytest.raises(psycopg.errors.DivisionByZero):
            pool.run(fails)
        assert pool.run(backend_pid) != first
    finally:
        pool.close()


def test_a_restarted_server_costs_no_caller_an_error(tmp_path: Path) -> None:
    first = PostgresServer(tmp_path / "first")
    first.start()
    try:
        pool = pool_for(first.info.dsn)
        assert pool.run(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
        pool.run(lambda conn: conn.execute("SELECT 1"))  # leaves an idle connection
    finally:
        first.stop()
    second = PostgresServer(tmp_path / "second", port=first.info.port)
    second.start()
    try:
        assert pool.run(lambda conn: conn.execute("SELECT 2").fetchone()) == (2,)
        pool.close()
    finally:
        second.stop()


def test_a_server_that_is_down_is_an_operational_error(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "gone")
    server.start()
    dsn = server.info.dsn
    pool = pool_for(dsn)
    pool.run(backend_pid)
    server.stop()
    with pytest.raises(psycopg.OperationalError):
        pool.run(backend_pid)


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
    dsn = postgres_server.info.dsn
    pool = ConnectionPool(
        lambda: postgres.connect(dsn, timeout=TIMEOUT_S, statement_timeout=TIMEOUT_S),
        deadline_s=2 * TIMEOUT_S,
    )
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


def test_a_short_deadline_fires_on_time_while_a_longer_one_is_watched(
    postgres_server: PostgresServer,
) -> None:
    """Deadlines share one watchdog thread: a shorter one set after a longer one must not wait
    for the longer one."""
    dsn = postgres_server.info.dsn
    with (
        postgres.connect(dsn) as slow,
        postgres.connect(dsn) as stuck,
        postgres.deadline(slow, 60),
    ):
        began = time.monotonic()
        with (
            frozen(stuck.info.backend_pid),
            pytest.raises(psycopg.OperationalError),
            postgres.deadline(stuck, TIMEOUT_S),
        ):
            stuck.execute("SELECT 1")
        waited = time.monotonic() - began
        assert waited < 5 * TIMEOUT_S, waited
        assert slow.execute("SELECT 1").fetchone() == (1,)  # the long one still runs
