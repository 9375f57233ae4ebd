"""What one lifecycle event changes in the aggregates (pure: no Redis, unit-tested alone)."""

from __future__ import annotations

from typing import NamedTuple

from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.common import events


class _Effect(NamedTuple):
    """What an event of one payload case changes."""

    status: job_pb2.JobStatus.ValueType  # the job's status afterwards
    totals_field: str
    throughput_field: str
    # Orders events of one attempt that share an occurred_at (start < retry < terminal).
    rank: int
    attempt_field: str  # the payload's attempt number; empty: it has none (attempt 0)


_EFFECTS: dict[str, _Effect] = {
    "job_created": _Effect(job_pb2.JOB_STATUS_PENDING, "submitted", "submitted", 0, ""),
    "job_started": _Effect(job_pb2.JOB_STATUS_RUNNING, "started", "", 1, "attempt"),
    "job_retry_scheduled": _Effect(
        job_pb2.JOB_STATUS_RETRY_SCHEDULED, "retried", "retried", 2, "attempt"
    ),
    "job_completed": _Effect(job_pb2.JOB_STATUS_COMPLETED, "completed", "completed", 3, "attempt"),
    "job_failed": _Effect(job_pb2.JOB_STATUS_FAILED, "failed", "failed", 3, "attempt"),
    "job_cancelled": _Effect(job_pb2.JOB_STATUS_CANCELLED, "cancelled", "", 3, "attempt"),
    "job_dead_lettered": _Effect(
        job_pb2.JOB_STATUS_DEAD_LETTERED, "dead_lettered", "failed", 4, "attempts"
    ),
}
_RUN_PAYLOADS = frozenset({"job_completed", "job_failed"})  # they carry run_duration

TOTALS = ("submitted", "started", "retried", "completed", "failed", "cancelled", "dead_lettered")
THROUGHPUT = ("submitted", "completed", "failed", "retried")
TERMINAL_PAYLOADS = frozenset({"job_completed", "job_failed", "job_cancelled", "job_dead_lettered"})


class UnknownEventError(ValueError):
    """An envelope no consumer can count or store: no payload it knows (e.g. a newer contract),
    no ids, an event type that is not its payload's, or a time outside protobuf's range (year 1
    to 9999)."""


# A NamedTuple, not a frozen dataclass: as immutable and hashable, and built several times
# faster (a frozen dataclass sets each field through object.__setattr__): one per event.
class EventFacts(NamedTuple):
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


def facts_of(envelope: event_pb2.EventEnvelope) -> EventFacts:
    case = envelope.WhichOneof("payload")
    if case is None or case not in _EFFECTS:
        raise UnknownEventError(f"event {envelope.event_id!r}: no known payload")
    event_id, job_id = envelope.event_id, envelope.job_id
    if not event_id or not job_id:
        raise UnknownEventError(f"event {event_id!r}: event_id and job_id are required")
    if envelope.event_type != events.event_type_of(case):  # the event store names it by type
        raise UnknownEventError(
            f"event {event_id!r}: event_type {envelope.event_type} does not match its {case}"
        )
    status, totals_field, throughput_field, rank, attempt_field = _EFFECTS[case]
    payload = getattr(envelope, case)
    queue_wait_ms = run_ms = None
    if case == "job_started":
        if payload.HasField("queue_wait"):
            queue_wait_ms = payload.queue_wait.ToMilliseconds()
    elif case in _RUN_PAYLOADS and payload.HasField("run_duration"):
        run_ms = payload.run_duration.ToMilliseconds()
    attempt = getattr(payload, attempt_field) if attempt_field else 0
    try:
        occurred_ms = envelope.occurred_at.ToMilliseconds()
    except ValueError as error:  # redelivered forever if it escaped: a poison event
        raise UnknownEventError(f"event {event_id!r}: occurred_at: {error}") from error
    return EventFacts(
        event_id=event_id,
        idempotency_key=envelope.idempotency_key,
        job_id=job_id,
        status=status,
        job_type=payload.spec.type if case == "job_created" else "",
        occurred_ms=occurred_ms,
        sequence=attempt * 10 + rank,
        totals_field=totals_field,
        throughput_field=throughput_field,
        terminal=case in TERMINAL_PAYLOADS,
        queue_wait_ms=queue_wait_ms,
        run_ms=run_ms,
    )


def is_newer(occurred_ms: int, sequence: int, last: tuple[int, int] | None) -> bool:
    """Whether an event moves the job's status: the same rule the Redis script applies."""
    return last is None or (occurred_ms, sequence) > last
