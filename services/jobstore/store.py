"""The job store: rows of `jobs` and `job_attempts` to and from the contract's messages.

Queries are parameterised; callers own the connection and its transaction. Statuses are stored
as lower-case names (`pending`, `retry_scheduled`) so SQL reads well.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from google.protobuf import json_format, struct_pb2
from observatory.jobs.v1 import job_pb2
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

Conn = psycopg.Connection[Any]

TERMINAL = frozenset(
    {
        job_pb2.JOB_STATUS_COMPLETED,
        job_pb2.JOB_STATUS_FAILED,
        job_pb2.JOB_STATUS_CANCELLED,
        job_pb2.JOB_STATUS_DEAD_LETTERED,
    }
)

_PREFIX = "JOB_STATUS_"


def status_name(status: job_pb2.JobStatus.ValueType) -> str:
    return job_pb2.JobStatus.Name(status).removeprefix(_PREFIX).lower()


def status_value(name: str) -> job_pb2.JobStatus.ValueType:
    return job_pb2.JobStatus.Value(_PREFIX + name.upper())


def outcome_name(outcome: job_pb2.AttemptOutcome.ValueType) -> str:
    return job_pb2.AttemptOutcome.Name(outcome).removeprefix("ATTEMPT_OUTCOME_").lower()


def _set_time(message: Any, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


def job_from_row(row: dict[str, Any]) -> job_pb2.Job:
    job = job_pb2.Job(
        id=str(row["id"]),
        type=row["type"],
        priority=row["priority"],
        status=status_value(row["status"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        idempotency_key=row["idempotency_key"] or "",
        correlation_id=row["correlation_id"],
        last_error=row["last_error"],
        cancel_requested=row["cancel_requested"],
        worker=row["worker"],
    )
    job.payload.update(row["payload"])
    job.timeout.FromTimedelta(timedelta(milliseconds=row["timeout_ms"]))
    for field in ("created_at", "updated_at", "started_at", "finished_at", "next_attempt_at"):
        _set_time(job, field, row[field])
    return job


def attempt_from_row(row: dict[str, Any]) -> job_pb2.JobAttempt:
    attempt = job_pb2.JobAttempt(
        job_id=str(row["job_id"]),
        number=row["number"],
        outcome=job_pb2.AttemptOutcome.Value(
            "ATTEMPT_OUTCOME_" + (row["outcome"] or "unspecified").upper()
        ),
        error=row["error"],
        worker=row["worker"],
    )
    _set_time(attempt, "started_at", row["started_at"])
    _set_time(attempt, "finished_at", row["finished_at"])
    return attempt


def payload_json(payload: struct_pb2.Struct) -> Jsonb:
    return Jsonb(json_format.MessageToDict(payload))


_INSERT = """
INSERT INTO jobs (id, type, payload, priority, status, max_attempts, timeout_ms,
                  idempotency_key, correlation_id, created_at, updated_at)
VALUES (%(id)s, %(type)s, %(payload)s, %(priority)s, 'pending', %(max_attempts)s,
        %(timeout_ms)s, %(idempotency_key)s, %(correlation_id)s, %(created_at)s, %(created_at)s)
ON CONFLICT DO NOTHING
RETURNING *
"""


def insert_job(conn: Conn, job: job_pb2.Job) -> tuple[job_pb2.Job, bool]:
    """Inserts a PENDING job; with an idempotency key already used, returns that job instead.

    Returns (job as stored, created).
    """
    params = {
        "id": job.id,
        "type": job.type,
        "payload": payload_json(job.payload),
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "timeout_ms": job.timeout.ToMilliseconds(),
        "idempotency_key": job.idempotency_key or None,
        "correlation_id": job.correlation_id,
        "created_at": job.created_at.ToDatetime(tzinfo=UTC),
    }
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_INSERT, params).fetchone()
        if row is not None:
            return job_from_row(row), True
        row = cur.execute(
            "SELECT * FROM jobs WHERE idempotency_key = %s OR id = %s",
            (job.idempotency_key or None, job.id),
        ).fetchone()
    if row is None:  # the conflicting row was deleted meanwhile: cannot happen, jobs are kept
        raise RuntimeError(f"job {job.id}: insert conflicted but no row found")
    return job_from_row(row), False


_INSERT_MANY = """
INSERT INTO jobs (id, type, payload, priority, status, max_attempts, timeout_ms,
                  idempotency_key, correlation_id, created_at, updated_at)
SELECT u.id, u.type, u.payload, u.priority, 'pending', u.max_attempts, u.timeout_ms,
       u.idempotency_key, u.correlation_id, u.created_at, u.created_at
FROM ROWS FROM (
         json_to_recordset(%s::json) AS (id uuid, type text, payload jsonb, priority int,
                                         max_attempts int, timeout_ms int, idempotency_key text,
                                         correlation_id text, created_at timestamptz))
     WITH ORDINALITY AS u(id, type, payload, priority, max_attempts, timeout_ms,
                          idempotency_key, correlation_id, created_at, n)
ORDER BY u.n
ON CONFLICT DO NOTHING
RETURNING id::text
"""


def insert_jobs(conn: Conn, jobs: Sequence[job_pb2.Job]) -> list[tuple[job_pb2.Job, bool]]:
    """`insert_job` for many jobs in two statements, in order: a job whose idempotency key is
    already used (earlier, or by an earlier job of the same call) gives the existing job.

    A new job is answered with the job given, as the insert stores it (PENDING, updated when
    created), not read back: building every row's Job again was half the gateway's insert cost.
    The row holds the same values where its columns are as fine (milliseconds, microseconds;
    jsonb keeps -0.0 as 0)."""
    if not jobs:
        return []
    rows = [
        {
            "id": job.id,
            "type": job.type,
            "payload": json_format.MessageToDict(job.payload),
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "timeout_ms": job.timeout.ToMilliseconds(),
            "idempotency_key": job.idempotency_key or None,
            "correlation_id": job.correlation_id,
            "created_at": job.created_at.ToDatetime(tzinfo=UTC).isoformat(),
        }
        for job in jobs
    ]
    # One JSON parameter: psycopg dumps nine array parameters element by element in Python.
    inserted = {job_id for (job_id,) in conn.execute(_INSERT_MANY, (Json(rows),))}
    keys = [job.idempotency_key for job in jobs if job.id not in inserted]
    existing = {}
    if keys:
        with conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                "SELECT * FROM jobs WHERE idempotency_key = ANY(%s)", (keys,)
            ).fetchall()
        existing = {row["idempotency_key"]: row for row in found}
    results: list[tuple[job_pb2.Job, bool]] = []
    for job in jobs:
        if job.id in inserted:
            new = job_pb2.Job()
            new.CopyFrom(job)
            new.status = job_pb2.JOB_STATUS_PENDING
            new.updated_at.CopyFrom(job.created_at)
            results.append((new, True))
        elif job.idempotency_key in existing:
            results.append((job_from_row(existing[job.idempotency_key]), False))
        else:  # an id collision (random bits: never) or a row deleted meanwhile (jobs are kept)
            raise RuntimeError(f"job {job.id}: insert conflicted but no row found")
    return results


def get_job(conn: Conn, job_id: str, *, for_update: bool = False) -> job_pb2.Job | None:
    row = get_row(conn, job_id, for_update=for_update)
    return None if row is None else job_from_row(row)


_SELECT = "SELECT * FROM jobs WHERE id = %s"
_SELECT_FOR_UPDATE = _SELECT + " FOR UPDATE"


def get_row(conn: Conn, job_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    """The raw row (with `version` and `lease_until`), locked for the transaction if asked."""
    sql = _SELECT_FOR_UPDATE if for_update else _SELECT
    with conn.cursor(row_factory=dict_row) as cur:
        row: dict[str, Any] | None = cur.execute(sql, (job_id,)).fetchone()
    return row


def get_attempts(conn: Conn, job_id: str) -> list[job_pb2.JobAttempt]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM job_attempts WHERE job_id = %s ORDER BY number", (job_id,)
        ).fetchall()
    return [attempt_from_row(row) for row in rows]
