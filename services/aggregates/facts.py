"""What one lifecycle event changes in the aggregates (pure: no Redis, unit-tested alone)."""

from __future__ import annotations

from dataclasses import dataclass

from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

# Payload case -> (status the job is in afterwards, totals field, throughput field, order rank).
# The rank orders events of one attempt that share an occurred_at (start < retry < terminal).
_EFFECTS: dict[str, tuple[job_pb2.JobStatus.ValueType, str, str, int]] = {
    "job_created": (job_pb2.JOB_STATUS_PENDING, "submitted", "submitted", 0),
    "job_started": (job_pb2.JOB_STATUS_RUNNING, "started", "", 1),
    "job_retry_scheduled": (job_pb2.JOB_STATUS_RETRY_SCHEDULED, "retried", "retried", 2),
    "job_completed": (job_pb2.JOB_STATUS_COMPLETED, "completed", "completed", 3),
    "job_failed": (job_pb2.JOB_STATUS_FAILED, "failed", "failed", 3),
    "job_cancelled": (job_pb2.JOB_STATUS_CANCELLED, "cancelled", "", 3),
    "job_dead_lettered": (job_pb2.JOB_STATUS_DEAD_LETTERED, "dead_lettered", "failed", 4),
}

TOTALS = ("submitted", "started", "retried", "completed", "failed", "cancelled", "dead_lettered")
THROUGHPUT = ("submitted", "completed", "failed", "retried")
TERMINAL_PAYLOADS = frozenset({"job_completed", "job_failed", "job_cancelled", "job_dead_lettered"})


class UnknownEventError(ValueError):
    """The envelope has no payload this consumer knows (e.g. a newer contract)."""


@dataclass(frozen=True)
class EventFacts:
    event_id: str
    idempotency_key: str
    job_id: str
    status: job_pb2.JobStatus.ValueType
    job_type: str  # only job.created carries it; empty otherwise
    occurred_ms: int
    # Tie-break for events with the same occurred_at: attempt * 10 + rank.
    sequence: int
    totals_field: str
    throughput_field: str  # empty: the event feeds no throughput series
    terminal: bool
    queue_wait_ms: int | None
    run_ms: int | None


def _attempt(envelope: event_pb2.EventEnvelope, case: str) -> int:
    payload = getattr(envelope, case)
    if case == "job_dead_lettered":
        return int(payload.attempts)
    return int(getattr(payload, "attempt", 0))


def facts_of(envelope: event_pb2.EventEnvelope) -> EventFacts:
    case = envelope.WhichOneof("payload")
    if case is None or case not in _EFFECTS:
        raise UnknownEventError(f"event {envelope.event_id!r}: no known payload")
    if not envelope.event_id or not envelope.job_id:
        raise UnknownEventError(f"event {envelope.event_id!r}: event_id and job_id are required")
    status, totals_field, throughput_field, rank = _EFFECTS[case]
    queue_wait_ms = run_ms = None
    if case == "job_started" and envelope.job_started.HasField("queue_wait"):
        queue_wait_ms = envelope.job_started.queue_wait.ToMilliseconds()
    elif case == "job_completed" and envelope.job_completed.HasField("run_duration"):
        run_ms = envelope.job_completed.run_duration.ToMilliseconds()
    elif case == "job_failed" and envelope.job_failed.HasField("run_duration"):
        run_ms = envelope.job_failed.run_duration.ToMilliseconds()
    return EventFacts(
        event_id=envelope.event_id,
        idempotency_key=envelope.idempotency_key,
        job_id=envelope.job_id,
        status=status,
        job_type=envelope.job_created.spec.type if case == "job_created" else "",
        occurred_ms=envelope.occurred_at.ToMilliseconds(),
        sequence=_attempt(envelope, case) * 10 + rank,
        totals_field=totals_field,
        throughput_field=throughput_field,
        terminal=case in TERMINAL_PAYLOADS,
        queue_wait_ms=queue_wait_ms,
        run_ms=run_ms,
    )


def is_newer(occurred_ms: int, sequence: int, last: tuple[int, int] | None) -> bool:
    """Whether an event moves the job's status: the same rule the Redis script applies."""
    return last is None or (occurred_ms, sequence) > last
