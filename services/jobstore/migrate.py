"""Versioned schema migrations, applied at start-up by every service that uses the job store.

Migrations are the numbered SQL files in migrations/ (`0001_jobs.sql`, ...), applied in order,
each in its own transaction, recorded in `schema_migrations`. An advisory lock makes concurrent
start-ups (N processors) apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from services.common import postgres
from services.common.config import redact
from services.common.lifecycle import backoff

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of the project.
_LOCK_ID = 0x0B5E_4A70


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    migrations = []
    for entry in resources.files("services.jobstore").joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            migrations.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(migrations, key=lambda m: m.version)


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Applies the missing migrations; returns the versions applied now."""
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in available():
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.version)
    return applied_now


def migrate_when_reachable(dsn: str, stop: threading.Event, application_name: str) -> bool:
    """Applies the migrations, waiting for PostgreSQL with backoff; False if stopped first.

    Every service that uses the job store calls this at start-up, so start order does not
    matter and a database that is still starting is waited for, not a reason to exit.
    """
    delays = backoff()
    while not stop.is_set():
        try:
            with postgres.connect(dsn, application_name=application_name) as conn:
                applied = migrate(conn)
            log.info("job store schema ready (applied now: %s)", applied)
            return True
        except psycopg.OperationalError as error:
            log.warning("postgresql %s unavailable, retrying: %s", redact(dsn), error)
            stop.wait(next(delays))
    return False
