"""End to end through real processes: the original's four proof paths, made strict, and the
failure semantics (retries, dead letters, cancellation, a processor killed mid-stream)."""

from __future__ import annotations

import itertools
import os
import signal
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2, read_model_pb2_grpc

from services.common import http_json, mongo, postgres
from tests.pipeline.conftest import Pipeline
from tools.testing.waiting import wait_for

pytestmark = pytest.mark.integration

TERMINAL = {"completed", "failed", "cancelled", "dead_lettered"}


@pytest.fixture(scope="module")
def gateway(pipeline: Pipeline) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(pipeline.gateway.info.grpc_target) as channel:
        yield gateway_pb2_grpc.JobServiceStub(channel)


@pytest.fixture(scope="module")
def read_model(pipeline: Pipeline) -> Iterator[read_model_pb2_grpc.ReadModelServiceStub]:
    with grpc.insecure_channel(pipeline.read_model.info.grpc_target) as channel:
        yield read_model_pb2_grpc.ReadModelServiceStub(channel)


def spec(job_type: str, payload: dict[str, Any], **fields: Any) -> job_pb2.JobSpec:
    job_spec = job_pb2.JobSpec(type=job_type, **fields)
    job_spec.payload.update(payload)
    return job_spec


def submit(gateway: gateway_pb2_grpc.JobServiceStub, specs: Sequence[job_pb2.JobSpec]) -> list[str]:
    response = gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(specs=specs), timeout=30)
    return [result.job_id for result in response.results]


def statuses(pipeline: Pipeline, job_ids: Sequence[str]) -> dict[str, str]:
    with postgres.connect(pipeline.postgres.info.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, status FROM jobs WHERE id = ANY(%s::uuid[])", (list(job_ids),)
        ).fetchall()
    return dict(rows)


def wait_terminal(pipeline: Pipeline, job_ids: Sequence[str], timeout: float) -> dict[str, str]:
    return wait_for(
        lambda: statuses(pipeline, job_ids),
        until=lambda found: len(found) == len(job_ids) and set(found.values()) <= TERMINAL,
        what=f"{len(job_ids)} jobs to finish",
        timeout=timeout,
    )


def events_of(pipeline: Pipeline, job_id: str) -> list[dict[str, Any]]:
    client = mongo.connect(pipeline.mongo.info.url)
    try:
        return list(
            client["observatory"]["job_events"].find({"jobId": job_id}).sort("occurredAt", 1)
        )
    finally:
        client.close()


def metric(url: str, name: str) -> float:
    """The sum of every sample of `name` on a /metrics page."""
    text = http_json.get_text(f"{url}/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def test_submit_to_completed_everywhere(
    pipeline: Pipeline, read_model: read_model_pb2_grpc.ReadModelServiceStub
) -> None:
    gateway_url, processor_url = pipeline.gateway.info.url, pipeline.processors[0].info.url
    submitted_before = metric(gateway_url, "gateway_jobs_submitted_total")
    stats_before = read_model.GetStats(read_model_pb2.GetStatsRequest(), timeout=10).stats

    reply = http_json.post_json(
        f"{gateway_url}/jobs", {"type": "echo", "payload": {"message": "hello"}}
    )
    job_id, event_id = reply["job_id"], reply["event_id"]
    assert uuid.UUID(job_id) and uuid.UUID(event_id)
    assert reply["status"] in ("PENDING", "JOB_STATUS_PENDING")

    assert wait_terminal(pipeline, [job_id], timeout=30) == {job_id: "completed"}

    detail = wait_for(
        lambda: read_model.GetJobDetail(read_model_pb2.GetJobDetailRequest(job_id=job_id)),
        until=lambda d: d.job.status == job_pb2.JOB_STATUS_COMPLETED and len(d.events) == 3,
        what="the read model to show it completed with its three events",
        timeout=15,
    )
    assert [a.outcome for a in detail.attempts] == [job_pb2.ATTEMPT_OUTCOME_SUCCEEDED]

    stored = wait_for(
        lambda: events_of(pipeline, job_id),
        until=lambda found: len(found) == 3,
        what="three events in MongoDB",
        timeout=15,
    )
    assert [e["eventType"] for e in stored] == [
        "EVENT_TYPE_JOB_CREATED",
        "EVENT_TYPE_JOB_STARTED",
        "EVENT_TYPE_JOB_COMPLETED",
    ]
    assert {e["jobId"] for e in stored} == {job_id}
    assert len({e["eventId"] for e in stored}) == 3
    assert stored[0]["eventId"] == event_id

    assert metric(gateway_url, "gateway_jobs_submitted_total") == submitted_before + 1
    assert (
        metric(processor_url, "processor_jobs_completed_total")
        + metric(pipeline.processors[1].info.url, "processor_jobs_completed_total")
        >= 1
    )

    def stats_moved() -> bool:
        stats = read_model.GetStats(read_model_pb2.GetStatsRequest(), timeout=10).stats
        return stats.total_jobs == stats_before.total_jobs + 1

    wait_for(stats_moved, what="stats to count the job", timeout=15)


def test_fails_twice_then_succeeds_in_three_attempts(
    pipeline: Pipeline,
    gateway: gateway_pb2_grpc.JobServiceStub,
    read_model: read_model_pb2_grpc.ReadModelServiceStub,
) -> None:
    [job_id] = submit(gateway, [spec("fail", {"until_attempt": 3}, max_attempts=3)])
    assert wait_terminal(pipeline, [job_id], timeout=60) == {job_id: "completed"}
    detail = read_model.GetJobDetail(read_model_pb2.GetJobDetailRequest(job_id=job_id))
    assert [a.number for a in detail.attempts] == [1, 2, 3]
    assert [a.outcome for a in detail.attempts] == [
        job_pb2.ATTEMPT_OUTCOME_FAILED,
        job_pb2.ATTEMPT_OUTCOME_FAILED,
        job_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
    ]


def test_always_failing_job_is_dead_lettered_after_backoff(
    pipeline: Pipeline, gateway: gateway_pb2_grpc.JobServiceStub
) -> None:
    [job_id] = submit(gateway, [spec("fail", {"message": "boom"}, max_attempts=3)])
    assert wait_terminal(pipeline, [job_id], timeout=60) == {job_id: "dead_lettered"}
    with postgres.connect(pipeline.postgres.info.dsn, autocommit=True) as conn:
        starts = [
            row[0]
            for row in conn.execute(
                "SELECT started_at FROM job_attempts WHERE job_id = %s ORDER BY number", (job_id,)
            )
        ]
    assert len(starts) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # Base 200 ms doubling with +-20 % jitter: ~0.2 s then ~0.4 s; the second gap is longer.
    assert 0.15 <= gaps[0] < gaps[1], gaps
    events = wait_for(
        lambda: events_of(pipeline, job_id),
        until=lambda found: (
            bool(found) and found[-1]["eventType"] == "EVENT_TYPE_JOB_DEAD_LETTERED"
        ),
        what="the dead-letter event",
        timeout=15,
    )
    retries = [e for e in events if e["eventType"] == "EVENT_TYPE_JOB_RETRY_SCHEDULED"]
    assert len(retries) == 2


def test_cancelled_pending_job_never_runs(
    pipeline: Pipeline, gateway: gateway_pb2_grpc.JobServiceStub
) -> None:
    # Freeze the processors so the job stays pending while it is cancelled.
    for processor in pipeline.processors:
        os.kill(processor.pid, signal.SIGSTOP)
    try:
        [job_id] = submit(gateway, [spec("echo", {})])
        cancelled = gateway.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=10)
        assert cancelled.job.status == job_pb2.JOB_STATUS_CANCELLED
    finally:
        for processor in pipeline.processors:
            os.kill(processor.pid, signal.SIGCONT)
    [marker] = submit(gateway, [spec("echo", {})])  # queued behind it: proves the queue moved on
    wait_terminal(pipeline, [marker], timeout=30)
    assert statuses(pipeline, [job_id]) == {job_id: "cancelled"}
    with postgres.connect(pipeline.postgres.info.dsn, autocommit=True) as conn:
        attempts = conn.execute("SELECT count(*) FROM job_attempts WHERE job_id = %s", (job_id,))
        assert attempts.fetchone() == (0,)


def test_killed_processor_loses_and_duplicates_nothing(
    pipeline: Pipeline,
    gateway: gateway_pb2_grpc.JobServiceStub,
    read_model: read_model_pb2_grpc.ReadModelServiceStub,
) -> None:
    job_ids = submit(gateway, [spec("sleep", {"seconds": 0.05}) for _ in range(200)])
    victim = pipeline.processors[0]
    wait_for(
        lambda: list(statuses(pipeline, job_ids).values()).count("completed") >= 20,
        what="the stream to get going",
        timeout=30,
    )
    os.kill(victim.pid, signal.SIGKILL)
    pipeline.start_processor()

    final = wait_terminal(pipeline, job_ids, timeout=90)
    assert set(final.values()) == {"completed"}, final
    client = mongo.connect(pipeline.mongo.info.url)
    try:
        events = client["observatory"]["job_events"]
        for job_id in job_ids:
            completions = events.count_documents(
                {"jobId": job_id, "eventType": "EVENT_TYPE_JOB_COMPLETED"}
            )
            assert completions == 1, job_id
    finally:
        client.close()

    # The stats must agree exactly with PostgreSQL: a completion counted twice would exceed it.
    with postgres.connect(pipeline.postgres.info.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
    completed_in_postgres = row[0] if row else 0

    def completed_in_stats() -> int:
        stats = read_model.GetStats(read_model_pb2.GetStatsRequest()).stats
        counts = {c.status: c.count for c in stats.by_status}
        return counts.get(job_pb2.JOB_STATUS_COMPLETED, 0)

    wait_for(
        completed_in_stats,
        until=lambda counted: counted == completed_in_postgres,
        what=f"stats to count exactly the {completed_in_postgres} completed jobs in PostgreSQL",
        timeout=60,
    )
