"""For tests against a real PostgreSQL: a connection to a migrated job store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.common import postgres
from services.jobstore import migrate, store


@contextmanager
def scratch_connection(dsn: str) -> Iterator[store.Conn]:
    """A connection to the migrated job store at `dsn`; what the test writes is rolled back."""
    with postgres.connect(dsn) as connection:
        migrate.migrate(connection)
        connection.commit()
        yield connection
        connection.rollback()
