"""Lifecycle events: the envelope (its id is `ids.event_id`), its routing key, and its wire form.

The wire form lives here only: `to_messages` turns envelopes into event-exchange messages (one
EventBatch per event type, so a consumer bound to "job.completed" gets only completed events) and
`from_message` turns a delivery (an EventBatch or a single EventEnvelope) back into envelopes.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2

from services.common import ids
from services.common.wire import EVENT_BATCH_MESSAGE_TYPE, EVENT_MESSAGE_TYPE

CONTRACT_VERSION = "1.0.0"
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


def timestamp(when: datetime) -> Timestamp:
    seconds, nanos = _timestamp_fields(when, getattr(when, "fold", 0))
    return Timestamp(seconds=seconds, nanos=nanos)


# Timestamp.FromDatetime is pure Python and costly; the events of a batch share a few times.
# `fold` is part of the key: equality ignores it, yet it picks the instant of an ambiguous
# local time (a DST change).
@functools.lru_cache(maxsize=256)
def _timestamp_fields(when: datetime, fold: int) -> tuple[int, int]:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts.seconds, ts.nanos


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
        event_id=ids.event_id(job_id, version),
        event_type=event_type_of(name),
        correlation_id=correlation_id,
        idempotency_key=f"{job_id}/{version}",
        contract_version=CONTRACT_VERSION,
        job_id=job_id,
    )
    # Messages copied in after construction: quicker than as constructor arguments.
    envelope.occurred_at.CopyFrom(timestamp(occurred_at))
    envelope.producer.CopyFrom(producer)
    getattr(envelope, name).CopyFrom(message)
    return envelope


def event_type_of(case: str) -> event_pb2.EventType.ValueType:
    """The event type an envelope with payload `case` ("job_completed") carries."""
    return _ROUTING[case][0]


def routing_key(envelope: event_pb2.EventEnvelope) -> str:
    return _ROUTING[envelope.WhichOneof("payload") or ""][1]


# Bounds one message's body (an event is a few hundred bytes) and a consumer's work per delivery.
MAX_BATCH_EVENTS = 500


class EventDecodeError(ValueError):
    """A delivery on the events exchange that holds no lifecycle events."""


@dataclass(frozen=True)
class EventMessage:
    """One message for the events exchange: publish `body` with `routing_key`, AMQP `type` =
    `message_type`, `message_id` and (if the events share one) `correlation_id`. Persistent."""

    routing_key: str
    body: bytes
    message_type: str
    message_id: str
    correlation_id: str | None
    event_ids: tuple[str, ...]


def to_messages(
    envelopes: Sequence[event_pb2.EventEnvelope], *, max_events: int = MAX_BATCH_EVENTS
) -> list[EventMessage]:
    """The messages that carry `envelopes`: per event type (in order of first appearance), one
    EventBatch of up to `max_events` events, keeping their order. A lone event still travels as a
    plain EventEnvelope (message id = event id), as before batching. Deterministic: the same
    envelopes give the same messages, so a republish after a crash repeats the message ids."""
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    by_key: dict[str, list[event_pb2.EventEnvelope]] = {}
    for envelope in envelopes:
        by_key.setdefault(routing_key(envelope), []).append(envelope)
    messages = []
    for key, group in by_key.items():
        for start in range(0, len(group), max_events):
            messages.append(_message(key, group[start : start + max_events]))
    return messages


def _message(key: str, group: list[event_pb2.EventEnvelope]) -> EventMessage:
    event_ids = tuple(e.event_id for e in group)
    correlations = {e.correlation_id for e in group}
    correlation_id = correlations.pop() if len(correlations) == 1 else None
    if len(group) == 1:
        body, message_type = group[0].SerializeToString(), EVENT_MESSAGE_TYPE
        message_id = event_ids[0]
    else:
        body = event_pb2.EventBatch(events=group).SerializeToString()
        message_type = EVENT_BATCH_MESSAGE_TYPE
        message_id = str(uuid.uuid5(ids.EVENT_NAMESPACE, "batch/" + ",".join(event_ids)))
    return EventMessage(key, body, message_type, message_id, correlation_id or None, event_ids)


def from_message(message_type: str | None, body: bytes) -> list[event_pb2.EventEnvelope]:
    """The envelopes of one delivery, by its AMQP `type`: an EventBatch or an EventEnvelope.
    Raises EventDecodeError for any other type, an unparsable body or an empty batch."""
    try:
        if message_type == EVENT_BATCH_MESSAGE_TYPE:
            batch = event_pb2.EventBatch.FromString(body)
            if not batch.events:
                raise EventDecodeError("event batch holds no events")
            return list(batch.events)
        if message_type == EVENT_MESSAGE_TYPE:
            return [event_pb2.EventEnvelope.FromString(body)]
    except DecodeError as error:
        raise EventDecodeError(f"undecodable {message_type} body: {error}") from error
    expected = f"{EVENT_MESSAGE_TYPE!r} or {EVENT_BATCH_MESSAGE_TYPE!r}"
    raise EventDecodeError(f"message type {message_type!r} is no event message ({expected})")
