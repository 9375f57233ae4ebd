"""Lifecycle events built from the job row after a transition (id = f(job id, row version))."""

from __future__ import annotations

import os
import socket
from datetime import UTC, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.common import events, topology
from services.jobstore import store

PRODUCER = event_pb2.Producer(
    service="processor", instance_id=f"{socket.gethostname()}/{os.getpid()}", version="1"
)
MAX_ATTEMPTS_EXHAUSTED = "max_attempts exhausted"
_ZERO = timedelta(0)

Row = dict[str, Any]


def duration(delta: timedelta) -> Duration:
    """`delta` as a Duration, negative ones as 0 (what Duration.FromTimedelta, which is pure
    Python and several times slower, makes of a non-negative timedelta)."""
    delta = max(delta, _ZERO)
    return Duration(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def event(row: Row, **payload: object) -> event_pb2.EventEnvelope:
    return events.envelope(
        job_id=str(row["id"]),
        version=row["version"],
        occurred_at=row["updated_at"],
        correlation_id=row["correlation_id"],
        producer=PRODUCER,
        **payload,
    )


def dead_letter_reason(row: Row) -> str:
    """Why a DEAD_LETTERED row got there: exhausted attempts, or the poison reason it stores."""
    if row["attempts"] >= row["max_attempts"]:
        return MAX_ATTEMPTS_EXHAUSTED
    return str(row["last_error"])


def last_event(row: Row, attempt: job_pb2.JobAttempt | None) -> event_pb2.EventEnvelope | None:
    """The event of the row's latest transition, rebuilt from the row: a replay after a crash
    republishes it with the same id. None for statuses the processor does not report last."""
    status = store.status_value(row["status"])
    number = row["attempts"]
    ran = timedelta(0)
    if attempt is not None and attempt.HasField("finished_at"):
        ran = attempt.finished_at.ToDatetime() - attempt.started_at.ToDatetime()
    payload: dict[str, object] = {}
    if status == job_pb2.JOB_STATUS_COMPLETED:
        return completed_event(row, ran)
    if status == job_pb2.JOB_STATUS_FAILED:
        payload["job_failed"] = event_pb2.JobFailed(
            attempt=number,
            worker=row["worker"],
            run_duration=duration(ran),
            error=row["last_error"],
        )
    elif status == job_pb2.JOB_STATUS_CANCELLED:
        stopped = attempt is not None and attempt.outcome == job_pb2.ATTEMPT_OUTCOME_CANCELLED
        payload["job_cancelled"] = event_pb2.JobCancelled(attempt=number if stopped else 0)
    elif status == job_pb2.JOB_STATUS_DEAD_LETTERED:
        payload["job_dead_lettered"] = event_pb2.JobDeadLettered(
            reason=dead_letter_reason(row),
            attempts=number,
            last_error=row["last_error"],
            dead_letter_queue=topology.DEAD_QUEUE,
        )
    elif status == job_pb2.JOB_STATUS_RUNNING and attempt is not None:
        started = event_pb2.JobStarted(attempt=number, worker=row["worker"])
        if number == 1:  # later attempts' eligibility time is gone once they start
            waited = attempt.started_at.ToDatetime(tzinfo=UTC) - row["created_at"]
            started.queue_wait.CopyFrom(duration(waited))
        payload["job_started"] = started
    elif status == job_pb2.JOB_STATUS_RETRY_SCHEDULED and row["next_attempt_at"] is not None:
        payload["job_retry_scheduled"] = event_pb2.JobRetryScheduled(
            attempt=number,
            delay=duration(row["next_attempt_at"] - row["updated_at"]),
            next_attempt_at=events.timestamp(row["next_attempt_at"]),
            error=row["last_error"],
            worker=row["worker"],
        )
    return event(row, **payload) if payload else None


def completed_event(row: Row, ran: timedelta) -> event_pb2.EventEnvelope:
    """job.completed of a COMPLETED row whose last attempt ran `ran`."""
    completed = event_pb2.JobCompleted(
        attempt=row["attempts"], worker=row["worker"], run_duration=duration(ran)
    )
    return event(row, job_completed=completed)
