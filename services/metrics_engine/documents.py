"""Lifecycle events as MongoDB documents (`observatory.job_events`), and back.

Field names follow the contract's JSON mapping (eventId, occurredAt, jobId, ...); occurredAt is
a real datetime so time-range queries work; the typed payload sits under `payload` in its JSON
form, its case given by eventType. `sortKey` ("<occurred ms, 15 digits>-<eventId>") orders events
by time then id in one unique, indexed field: the keyset cursor of ListEvents. `_id` is the
eventId: the always-present unique `_id` index deduplicates redelivered events, so no second
unique index has to be kept up to date on every insert. Empty optional strings (correlationId,
idempotencyKey) are left out: every insert pays for each field, and readers default them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from observatory.events.v1 import event_pb2

DATABASE = "observatory"
COLLECTION = "job_events"

# EventType name -> payload field of the envelope's oneof.
_PAYLOAD_FIELD = {
    "EVENT_TYPE_JOB_CREATED": "job_created",
    "EVENT_TYPE_JOB_STARTED": "job_started",
    "EVENT_TYPE_JOB_RETRY_SCHEDULED": "job_retry_scheduled",
    "EVENT_TYPE_JOB_COMPLETED": "job_completed",
    "EVENT_TYPE_JOB_FAILED": "job_failed",
    "EVENT_TYPE_JOB_CANCELLED": "job_cancelled",
    "EVENT_TYPE_JOB_DEAD_LETTERED": "job_dead_lettered",
}


def to_document(envelope: event_pb2.EventEnvelope) -> dict[str, Any]:
    case = envelope.WhichOneof("payload")
    payload = json_format.MessageToDict(getattr(envelope, case)) if case else {}
    document = {
        "_id": envelope.event_id,
        "eventId": envelope.event_id,
        "eventType": event_pb2.EventType.Name(envelope.event_type),
        "occurredAt": envelope.occurred_at.ToDatetime(tzinfo=UTC),
        "jobId": envelope.job_id,
        "producer": {
            "service": envelope.producer.service,
            "instanceId": envelope.producer.instance_id,
            "version": envelope.producer.version,
        },
        "contractVersion": envelope.contract_version,
        "payload": payload,
        "sortKey": sort_key(envelope.occurred_at.ToMilliseconds(), envelope.event_id),
    }
    if envelope.correlation_id:
        document["correlationId"] = envelope.correlation_id
    if envelope.idempotency_key:
        document["idempotencyKey"] = envelope.idempotency_key
    return document


def sort_key(occurred_ms: int, event_id: str) -> str:
    return f"{occurred_ms:015d}-{event_id}"


def from_document(document: dict[str, Any]) -> event_pb2.EventEnvelope:
    occurred: datetime = document["occurredAt"]
    if occurred.tzinfo is None:  # pymongo returns naive UTC datetimes unless tz_aware
        occurred = occurred.replace(tzinfo=UTC)
    envelope = event_pb2.EventEnvelope(
        event_id=document["eventId"],
        event_type=event_pb2.EventType.Value(document["eventType"]),
        job_id=document["jobId"],
        correlation_id=document.get("correlationId", ""),
        idempotency_key=document.get("idempotencyKey", ""),
        contract_version=document.get("contractVersion", ""),
    )
    envelope.occurred_at.FromDatetime(occurred)
    producer = document.get("producer") or {}
    envelope.producer.service = producer.get("service", "")
    envelope.producer.instance_id = producer.get("instanceId", "")
    envelope.producer.version = producer.get("version", "")
    field = _PAYLOAD_FIELD.get(document["eventType"])
    if field is not None:
        json_format.ParseDict(
            document.get("payload") or {}, getattr(envelope, field), ignore_unknown_fields=True
        )
    return envelope
