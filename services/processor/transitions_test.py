"""The set-based transitions of a micro-batch against a real PostgreSQL: they leave the rows the
one-row forms leave, and the events built from what they return are the events a replay
rebuilds from the stored row (same ids, same fields), so a republish after a crash repeats them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from observatory.jobs.v1 import job_pb2

from services.jobstore import store
from services.jobstore.testing import scratch_connection
from services.processor import jobevents, transitions
from services.processor.testing import make_job
from tools.testing.servers import PostgresServer
from tools.testing.servers.fixtures import server_fixture

pytestmark = pytest.mark.integration

pg = server_fixture("pg", PostgresServer, scope="module")

LEASE = timedelta(seconds=30)
WORKER = "host:1:w0"
# What the one-row and set-based forms must agree on (not the job's own id, times and key).
COMPARED = (
    "status", "attempts", "version", "worker", "lease_until", "started_at",
    "finished_at", "next_attempt_at", "last_error", "cancel_requested",
)  # fmt: skip


@pytest.fixture
def conn(pg: PostgresServer) -> Iterator[store.Conn]:
    with scratch_connection(pg.info.dsn) as connection:
        yield connection


def insert(conn: store.Conn, count: int) -> list[str]:
    jobs = [make_job("noop") for _ in range(count)]
    store.insert_jobs(conn, jobs)
    return [job.id for job in jobs]


def stored(conn: store.Conn, job_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    row = store.get_row(conn, job_id)
    assert row is not None
    attempts = [
        (a.number, a.outcome, a.error, a.worker, a.started_at, a.finished_at)
        for a in store.get_attempts(conn, job_id)
    ]
    return {name: row[name] for name in COMPARED}, attempts


def test_locked_rows_are_keyed_by_job_id_and_unknown_jobs_left_out(conn: store.Conn) -> None:
    ids = insert(conn, 3)
    unknown = str(uuid.uuid4())
    to_start = transitions.lock_to_start(conn, [*ids, unknown])
    assert set(to_start) == set(ids)
    for job_id, row in to_start.items():
        assert row["id"] == job_id
        assert (row["status"], row["attempts"], row["cancel_requested"]) == ("pending", 0, False)
        assert row["created_at"] == row["updated_at"] and row["lease_until"] is None
    transitions.start_attempts(conn, {ids[0]: 1}, worker=WORKER, now=datetime.now(UTC), lease=LEASE)
    to_finish = transitions.lock_to_finish(conn, [*ids, unknown])
    assert set(to_finish) == set(ids)
    assert to_finish[ids[0]] == {"id": ids[0], "status": "running", "attempts": 1, "worker": WORKER}


def test_starting_and_completing_a_batch_writes_what_one_row_at_a_time_writes(
    conn: store.Conn,
) -> None:
    batch, (single,) = insert(conn, 4), insert(conn, 1)
    started_at = datetime.now(UTC)
    transitions.lock_to_start(conn, [*batch, single])
    started = transitions.start_attempts(
        conn, dict.fromkeys(batch, 1), worker=WORKER, now=started_at, lease=LEASE
    )
    transitions.start_attempt(conn, single, attempt=1, worker=WORKER, now=started_at, lease=LEASE)
    assert set(started) == set(batch)
    for job_id, row in started.items():
        assert row["id"] == job_id
        assert stored(conn, job_id) == stored(conn, single)

    finished_at = started_at + timedelta(milliseconds=1234)
    completed = transitions.complete_attempts(conn, dict.fromkeys(batch, 1), finished_at)
    transitions.finish_attempt(
        conn,
        single,
        attempt=1,
        outcome=job_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
        error="",
        now=finished_at,
    )
    transitions.set_status(conn, single, job_pb2.JOB_STATUS_COMPLETED, finished_at)
    assert set(completed) == set(batch)
    for job_id, (row, ran) in completed.items():
        assert row["id"] == job_id
        assert ran == timedelta(milliseconds=1234)
        assert stored(conn, job_id) == stored(conn, single)


def test_events_of_a_batch_are_the_events_a_replay_rebuilds(conn: store.Conn) -> None:
    ids = insert(conn, 3)
    now = datetime.now(UTC)
    transitions.lock_to_start(conn, ids)
    transitions.start_attempts(conn, dict.fromkeys(ids, 1), worker=WORKER, now=now, lease=LEASE)
    completed = transitions.complete_attempts(
        conn, dict.fromkeys(ids, 1), now + timedelta(seconds=2)
    )
    for job_id, (row, ran) in completed.items():
        replayed = jobevents.last_event(
            store.get_row(conn, job_id) or {}, transitions.last_attempt(conn, job_id)
        )
        assert jobevents.completed_event(row, ran) == replayed
