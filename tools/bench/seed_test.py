"""Seeding a real PostgreSQL with the jobs schema: valid jobs, older than any run, up to a total."""

from __future__ import annotations

import pytest

from services.common import postgres
from services.jobstore.testing import migrated_connection
from tools.bench import seed
from tools.testing.servers import PostgresServer

pytestmark = pytest.mark.integration
pytest_plugins = ["tools.testing.servers.pytest_plugin"]


def test_seeding_fills_the_table_up_to_the_total_and_only_once(
    postgres_server: PostgresServer,
) -> None:
    dsn = postgres_server.info.dsn
    with migrated_connection(dsn):
        pass
    messages: list[str] = []
    assert seed.seed(dsn, 2500, progress=messages.append) == 2500
    assert messages  # progress is reported
    assert seed.seed(dsn, 2000) == 2500  # already there: nothing added
    with postgres.connect(dsn, autocommit=True) as conn:
        statuses: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM jobs GROUP BY 1").fetchall()
        )
        newest = conn.execute(
            "SELECT max(created_at) < now() - interval '1 day' FROM jobs"
        ).fetchone()
    assert set(statuses) == {"completed", "failed", "dead_lettered", "cancelled"}
    assert statuses["completed"] > sum(statuses.values()) / 2
    assert newest == (True,)  # history is older than anything a benchmark run submits
