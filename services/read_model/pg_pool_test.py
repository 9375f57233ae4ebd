"""The read model's PostgreSQL pool: connections are reused, a failed call's connection is not,
and a server restart costs no caller an error."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from services.common import postgres
from services.jobstore import store
from services.read_model.pg_pool import ConnectionPool
from tools.testing.servers import PostgresServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration


def backend_pid(conn: store.Conn) -> int:
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

        def fails(conn: store.Conn) -> int:
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
