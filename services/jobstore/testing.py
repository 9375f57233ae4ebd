"""For tests against a real PostgreSQL: connections to a migrated job store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.common import postgres
from services.jobstore import migrate, store


@contextmanager
def migrated_connection(dsn: str) -> Iterator[store.Conn]:
    """A connection to the job store at `dsn`, migrated (the migration committed); what the
    test does with it is up to the test (commit what other processes must see)."""
    with postgres.connect(dsn) as connection:
        migrate.migrate(connection)
        connection.commit()
        yield connection


@contextmanager
def scratch_connection(dsn: str) -> Iterator[store.Conn]:
    """A connection to the migrated job store at `dsn`; what the test writes is rolled back."""
    with migrated_connection(dsn) as connection:
        yield connection
        connection.rollback()
