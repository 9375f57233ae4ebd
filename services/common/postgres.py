"""PostgreSQL connections (psycopg 3)."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow


def connect(
    dsn: str,
    *,
    autocommit: bool = False,
    application_name: str | None = None,
    timeout: float = 10.0,
) -> psycopg.Connection[TupleRow]:
    """Opens a connection from a libpq DSN or postgresql:// URL."""
    conninfo = make_conninfo(
        dsn, application_name=application_name, connect_timeout=max(1, round(timeout))
    )
    return psycopg.connect(conninfo, autocommit=autocommit)
