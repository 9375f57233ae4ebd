"""Building lifecycle events: the envelope, its deterministic id, its routing key."""

from __future__ import annotations

import uuid
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2

CONTRACT_VERSION = "1.0.0"
# Fixed namespace: the same (job, version) always yields the same event id, so a replay after a
# crash is recognised as a duplicate by every consumer.
EVENT_NAMESPACE = uuid.UUID("6f1c5a52-8d0e-4b59-9a51-2f7f0c1d9e3b")

# Payload field of the envelope's oneof -> event type, routing key.
_ROUTING = {
    "job_created": (event_pb2.EVENT_TYPE_JOB_CREATED, "job.created"),
    "job_started": (event_pb2.EVENT_TYPE_JOB_STARTED, "job.started"),
    "job_retry_scheduled": (event_pb2.EVENT_TYPE_JOB_RETRY_SCHEDULED, "job.retry_scheduled"),
    "job_completed": (event_pb2.EVENT_TYPE_JOB_COMPLETED, "job.completed"),
    "job_failed": (event_pb2.EVENT_TYPE_JOB_FAILED, "job.failed"),
    "job_cancelled": (event_pb2.EVENT_TYPE_JOB_CANCELLED, "job.cancelled"),
    "job_dead_lettered": (event_pb2.EVENT_TYPE_JOB_DEAD_LETTERED, "job.dead_lettered"),
}


def event_id(job_id: str, version: int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{job_id}/{version}"))


def timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def envelope(
    *,
    job_id: str,
    version: int,
    occurred_at: datetime,
    correlation_id: str,
    producer: event_pb2.Producer,
    **payload: object,
) -> event_pb2.EventEnvelope:
    """An envelope with exactly one payload, e.g. `job_completed=event_pb2.JobCompleted(...)`."""
    (name, message), *rest = payload.items()
    if rest or name not in _ROUTING:
        raise ValueError(f"exactly one payload of {sorted(_ROUTING)} expected, got {list(payload)}")
    envelope = event_pb2.EventEnvelope(
        event_id=event_id(job_id, version),
        event_type=_ROUTING[name][0],
        occurred_at=timestamp(occurred_at),
        correlation_id=correlation_id,
        idempotency_key=f"{job_id}/{version}",
        producer=producer,
        contract_version=CONTRACT_VERSION,
        job_id=job_id,
    )
    getattr(envelope, name).CopyFrom(message)
    return envelope


def routing_key(envelope: event_pb2.EventEnvelope) -> str:
    return _ROUTING[envelope.WhichOneof("payload") or ""][1]
