"""The processor's writes to the job store: each bumps `version` and returns the new row.

Callers hold the row lock (`store.get_row(for_update=True)`) inside one transaction. The
set-based forms read and return only the columns they use, never the payload: a job's payload
comes with its work message, and decoding jsonb and building dicts per row was a large share of
a no-op job's CPU.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, LiteralString

from observatory.jobs.v1 import job_pb2
from psycopg.rows import dict_row

from services.jobstore import store

Row = dict[str, Any]

_START = """
UPDATE jobs SET status = 'running', attempts = %(attempt)s, version = version + 1,
       started_at = COALESCE(started_at, %(now)s), updated_at = %(now)s, worker = %(worker)s,
       lease_until = %(lease_until)s, next_attempt_at = NULL
WHERE id = %(id)s RETURNING *
"""


def start_attempt(
    conn: store.Conn, job_id: str, *, attempt: int, worker: str, now: datetime, lease: timedelta
) -> Row:
    params = {"id": job_id, "attempt": attempt, "worker": worker, "now": now}
    row = _returning(conn, _START, params | {"lease_until": now + lease})
    conn.execute(
        "INSERT INTO job_attempts (job_id, number, started_at, worker)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (job_id, attempt, now, worker),
    )
    return row


def finish_attempt(
    conn: store.Conn,
    job_id: str,
    *,
    attempt: int,
    outcome: job_pb2.AttemptOutcome.ValueType,
    error: str,
    now: datetime,
) -> None:
    conn.execute(
        "UPDATE job_attempts SET finished_at = %s, outcome = %s, error = %s"
        " WHERE job_id = %s AND number = %s",
        (now, store.outcome_name(outcome), error, job_id, attempt),
    )


_SET_STATUS = """
UPDATE jobs SET status = %(status)s, version = version + 1, updated_at = %(now)s,
       lease_until = NULL, cancel_requested = cancel_requested AND %(status)s <> 'cancelled',
       finished_at = CASE WHEN %(terminal)s THEN %(now)s ELSE finished_at END,
       last_error = COALESCE(%(error)s, last_error), next_attempt_at = %(next_attempt_at)s
WHERE id = %(id)s RETURNING *
"""


def set_status(
    conn: store.Conn,
    job_id: str,
    status: job_pb2.JobStatus.ValueType,
    now: datetime,
    *,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> Row:
    params = {
        "id": job_id,
        "status": store.status_name(status),
        "now": now,
        "terminal": status in store.TERMINAL,
        "error": error,
        "next_attempt_at": next_attempt_at,
    }
    return _returning(conn, _SET_STATUS, params)


def renew_lease(
    conn: store.Conn, job_id: str, attempt: int, worker: str, until: datetime
) -> bool | None:
    """Extends our lease; returns cancel_requested, or None when the attempt is no longer ours."""
    row = conn.execute(
        "UPDATE jobs SET lease_until = %s WHERE id = %s AND status = 'running'"
        " AND attempts = %s AND worker = %s RETURNING cancel_requested",
        (until, job_id, attempt, worker),
    ).fetchone()
    return None if row is None else bool(row[0])


def last_attempt(conn: store.Conn, job_id: str) -> job_pb2.JobAttempt | None:
    attempts = store.get_attempts(conn, job_id)
    return attempts[-1] if attempts else None


def _returning(conn: store.Conn, sql: str, params: dict[str, Any]) -> Row:
    with conn.cursor(row_factory=dict_row) as cur:
        row: Row | None = cur.execute(sql, params).fetchone()
    if row is None:  # the caller holds the row lock, so the row exists
        raise RuntimeError(f"job {params['id']}: row vanished under its lock")
    return row


# -- Set-based forms of the common path, for a micro-batch whose rows the caller has locked ----
# The id comes back as text (`id::text`): a uuid.UUID built per row only to be str()-ed again
# cost more than the rest of the row. The id and attempt arrays go out in binary (`%b`): the
# text form quotes every element through a regular expression.

# Locks in uuid order (`jobs.id`; a bare `id` would name the text column), so concurrent batches
# cannot deadlock, reading only the given columns: timestamptz values cost the most to load.
_LOCK_MANY = """
SELECT id::text AS id, {columns}
FROM jobs WHERE id = ANY(%b::uuid[]) ORDER BY jobs.id FOR UPDATE
"""
# What deciding and starting an attempt read of a row.
_LOCK_TO_START = _LOCK_MANY.format(
    columns="status, attempts, cancel_requested, lease_until, created_at, updated_at,"
    " next_attempt_at"
)
# What telling whether a row still runs a given attempt of a given worker reads.
_LOCK_TO_FINISH = _LOCK_MANY.format(columns="status, attempts, worker")

# Each set-based write is one statement (data-modifying CTEs): its arrays are sent once, in one
# round trip.
_START_MANY = """
WITH u AS (SELECT * FROM unnest(%(ids)b::uuid[], %(attempts)b::int[]) AS u(id, attempt)),
recorded AS (
    INSERT INTO job_attempts (job_id, number, started_at, worker)
    SELECT u.id, u.attempt, %(now)s, %(worker)s FROM u
    ON CONFLICT DO NOTHING
)
UPDATE jobs SET status = 'running', attempts = u.attempt, version = version + 1,
       started_at = COALESCE(started_at, %(now)s), updated_at = %(now)s, worker = %(worker)s,
       lease_until = %(lease_until)s, next_attempt_at = NULL
FROM u WHERE jobs.id = u.id
RETURNING jobs.id::text AS id, jobs.version, jobs.updated_at, jobs.correlation_id
"""

# `ran` is NULL for a job without attempt row k (never: the caller checked the attempt is ours).
_COMPLETE_MANY = """
WITH u AS (SELECT * FROM unnest(%(ids)b::uuid[], %(attempts)b::int[]) AS u(id, attempt)),
finished AS (
    UPDATE job_attempts a SET finished_at = %(now)s, outcome = 'succeeded', error = ''
    FROM u WHERE a.job_id = u.id AND a.number = u.attempt
    RETURNING a.job_id, a.finished_at - a.started_at AS ran
)
UPDATE jobs SET status = 'completed', version = version + 1, updated_at = %(now)s,
       lease_until = NULL, finished_at = %(now)s, next_attempt_at = NULL
FROM u LEFT JOIN finished ON finished.job_id = u.id
WHERE jobs.id = u.id
RETURNING jobs.id::text AS id, jobs.attempts, jobs.worker, jobs.version, jobs.created_at,
          jobs.updated_at, jobs.correlation_id, finished.ran
"""


def lock_to_start(conn: store.Conn, job_ids: list[str]) -> dict[str, Row]:
    """Locks the rows of `job_ids`: job id -> what deciding and starting an attempt read."""
    return _lock_rows(conn, _LOCK_TO_START, job_ids)


def lock_to_finish(conn: store.Conn, job_ids: list[str]) -> dict[str, Row]:
    """Locks the rows of `job_ids`: job id -> whose attempt each runs (status, attempts, worker)."""
    return _lock_rows(conn, _LOCK_TO_FINISH, job_ids)


def _lock_rows(conn: store.Conn, sql: LiteralString, job_ids: list[str]) -> dict[str, Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, (job_ids,)).fetchall()
    return {row["id"]: row for row in rows}


def start_attempts(
    conn: store.Conn,
    attempts: dict[str, int],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> dict[str, Row]:
    """`start_attempt` for many locked rows (job id -> attempt) in one statement; returns what
    job.started needs of each new row (id, version, updated_at, correlation_id)."""
    if not attempts:
        return {}
    params = {
        "ids": list(attempts),
        "attempts": list(attempts.values()),
        "worker": worker,
        "now": now,
        "lease_until": now + lease,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_START_MANY, params).fetchall()
    return {row["id"]: row for row in rows}


def complete_attempts(
    conn: store.Conn, attempts: dict[str, int], now: datetime
) -> dict[str, tuple[Row, timedelta]]:
    """Records attempt k of each locked RUNNING row as succeeded and the job as COMPLETED:
    `finish_attempt` + `set_status(COMPLETED)` for many rows; job id -> (what job.completed
    needs of the new row, how long the attempt ran)."""
    if not attempts:
        return {}
    params = {"ids": list(attempts), "attempts": list(attempts.values()), "now": now}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_COMPLETE_MANY, params).fetchall()
    completed: dict[str, tuple[Row, timedelta]] = {}
    for row in rows:
        ran = row.pop("ran")
        if ran is None:
            raise RuntimeError(f"job {row['id']}: no attempt {attempts[row['id']]} to complete")
        completed[row["id"]] = (row, ran)
    return completed
