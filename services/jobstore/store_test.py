"""The job store's batch insert against a real PostgreSQL: the same answers as one insert per
job (order, idempotency, duplicates inside one batch), in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from observatory.jobs.v1 import job_pb2

from services.jobstore import store
from services.jobstore.testing import scratch_connection
from tools.testing.servers import PostgresServer
from tools.testing.servers.fixtures import server_fixture

pytestmark = pytest.mark.integration

pg = server_fixture("pg", PostgresServer, scope="module")


@pytest.fixture
def conn(pg: PostgresServer) -> Iterator[store.Conn]:
    with scratch_connection(pg.info.dsn) as connection:
        yield connection


def job(key: str = "", payload: dict[str, Any] | None = None) -> job_pb2.Job:
    new = job_pb2.Job(
        id=str(uuid.uuid4()),
        type="noop",
        priority=3,
        status=job_pb2.JOB_STATUS_PENDING,
        max_attempts=4,
        idempotency_key=key,
        correlation_id="c-1",
    )
    new.payload.update(payload or {})
    new.timeout.FromTimedelta(timedelta(seconds=7))
    new.created_at.FromDatetime(datetime.now(UTC))
    return new


def test_a_batch_is_stored_like_single_inserts_in_request_order(conn: store.Conn) -> None:
    jobs = [job(payload={"n": n, "nested": {"x": [1, 2]}}) for n in range(5)]
    results = store.insert_jobs(conn, jobs)
    assert [(stored.id, created) for stored, created in results] == [(j.id, True) for j in jobs]
    for original, (stored, _) in zip(jobs, results, strict=True):
        assert store.get_job(conn, original.id) == stored
        assert (stored.payload, stored.priority, stored.max_attempts) == (
            original.payload,
            3,
            4,
        )
        assert stored.timeout.ToMilliseconds() == 7000
        assert stored.status == job_pb2.JOB_STATUS_PENDING


def test_a_used_idempotency_key_answers_the_existing_job(conn: store.Conn) -> None:
    key = f"k-{uuid.uuid4()}"
    ((first, created),) = store.insert_jobs(conn, [job(key)])
    assert created
    fresh = job()
    results = store.insert_jobs(conn, [job(key), fresh])
    assert [(stored.id, created) for stored, created in results] == [
        (first.id, False),
        (fresh.id, True),
    ]


def test_a_key_repeated_inside_one_batch_creates_one_job(conn: store.Conn) -> None:
    key = f"k-{uuid.uuid4()}"
    a, b = job(key), job(key)
    results = store.insert_jobs(conn, [a, b])
    assert [(stored.id, created) for stored, created in results] == [(a.id, True), (a.id, False)]
    assert store.get_job(conn, b.id) is None


def test_an_empty_batch_does_nothing(conn: store.Conn) -> None:
    assert store.insert_jobs(conn, []) == []


def test_a_new_job_is_answered_as_given_and_stored_as_given(conn: store.Conn) -> None:
    """The answer for a new job is the job sent (PENDING), not its row read back: what the row
    holds of a job as the gateway builds it (whole milliseconds, microseconds) must be the same."""
    sent = job(
        payload={
            "text": 'zé 😀 "quoted" \\ {a,b}',
            "big": 1e300,
            "n": 12345678.125,
            "flags": [True, False, None],
            "nested": {"e": {}, "l": []},
        }
    )
    sent.type = 'type with "quotes", commas and spaces'
    far = job()
    far.created_at.FromDatetime(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    ran = job()
    ran.status = job_pb2.JOB_STATUS_RUNNING  # a new row is pending whatever the job said
    results = store.insert_jobs(conn, [sent, far, ran])
    assert [created for _, created in results] == [True, True, True]
    for original, (answered, _) in zip([sent, far, ran], results, strict=True):
        assert answered == store.get_job(conn, original.id)
        assert answered.status == job_pb2.JOB_STATUS_PENDING
