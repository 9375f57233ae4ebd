"""The processor's writes to the job store: each bumps `version` and returns the new row.

Callers hold the row lock (`store.get_row(for_update=True)`) inside one transaction. The
set-based forms read and return only the columns they use, never the payload: a job's payload
comes with its work message, and decoding jsonb and building dicts per row was a large share of
a no-op job's CPU.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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

# Only what deciding, starting and concluding an attempt and building its event read of a row.
_LOCK_MANY = """
SELECT id, status, attempts, max_attempts, cancel_requested, lease_until, created_at, updated_at,
       next_attempt_at, last_error, worker, version, correlation_id
FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE
"""

_START_MANY = """
UPDATE jobs SET status = 'running', attempts = u.attempt, version = version + 1,
       started_at = COALESCE(started_at, %(now)s), updated_at = %(now)s, worker = %(worker)s,
       lease_until = %(lease_until)s, next_attempt_at = NULL
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS u(id, attempt)
WHERE jobs.id = u.id RETURNING jobs.id, jobs.version, jobs.updated_at, jobs.correlation_id
"""

_START_ATTEMPTS = """
INSERT INTO job_attempts (job_id, number, started_at, worker)
SELECT u.id, u.attempt, %(now)s, %(worker)s
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS u(id, attempt)
ON CONFLICT DO NOTHING
"""

_SUCCEED_ATTEMPTS = """
UPDATE job_attempts a SET finished_at = %(now)s, outcome = 'succeeded', error = ''
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS u(id, attempt)
WHERE a.job_id = u.id AND a.number = u.attempt
RETURNING a.job_id, a.finished_at - a.started_at AS ran
"""

_COMPLETE_MANY = """
UPDATE jobs SET status = 'completed', version = version + 1, updated_at = %(now)s,
       lease_until = NULL, finished_at = %(now)s, next_attempt_at = NULL
WHERE id = ANY(%(ids)s::uuid[])
RETURNING id, attempts, worker, version, created_at, updated_at, correlation_id
"""


def lock_rows(conn: store.Conn, job_ids: list[str]) -> dict[str, Row]:
    """Locks the rows of `job_ids` (in id order, so concurrent batches cannot deadlock)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_LOCK_MANY, (job_ids,)).fetchall()
    return {str(row["id"]): row for row in rows}


def start_attempts(
    conn: store.Conn,
    attempts: dict[str, int],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> dict[str, Row]:
    """`start_attempt` for many locked rows (job id -> attempt) in two statements; returns what
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
        cur.execute(_START_ATTEMPTS, params)
    return {str(row["id"]): row for row in rows}


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
        finished = cur.execute(_SUCCEED_ATTEMPTS, params).fetchall()
        rows = cur.execute(_COMPLETE_MANY, params).fetchall()
    ran: dict[str, timedelta] = {str(row["job_id"]): row["ran"] for row in finished}
    return {str(row["id"]): (row, ran[str(row["id"])]) for row in rows}
