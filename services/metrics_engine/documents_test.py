"""Event <-> MongoDB document: the contract's JSON names, a real datetime, a lossless round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.metrics_engine.documents import from_document, to_document
from services.metrics_engine.sample_events import JobStory

T0 = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


def test_documents_use_contract_names_and_round_trip() -> None:
    story = JobStory(T0, job_type="email").created().started(1, 5).retry(1, 7)
    story.started(2, 3).completed(2, 9)
    for envelope in story.events:
        document = to_document(envelope)
        assert document["eventId"] == document["_id"] == envelope.event_id  # _id deduplicates
        assert document["jobId"] == story.job_id
        assert isinstance(document["occurredAt"], datetime)
        assert document["occurredAt"] == envelope.occurred_at.ToDatetime(tzinfo=UTC)
        assert set(document["producer"]) == {"service", "instanceId", "version"}
        # pymongo hands datetimes back naive (UTC); the mapping accepts both.
        naive = {**document, "occurredAt": document["occurredAt"].replace(tzinfo=None)}
        assert from_document(naive) == envelope
    created = to_document(story.events[0])
    assert created["eventType"] == "EVENT_TYPE_JOB_CREATED"
    assert created["payload"]["spec"]["type"] == "email"
    assert created["payload"]["maxAttempts"] == 3
    assert to_document(story.events[-1])["payload"]["runDuration"] == "0.009s"


def test_occurred_at_keeps_microseconds_and_sort_key_whole_milliseconds() -> None:
    envelope = JobStory(T0).created().events[0]
    envelope.occurred_at.nanos = 123_456_789
    document = to_document(envelope)
    assert document["occurredAt"] == T0.replace(microsecond=123_456)
    assert document["sortKey"] == f"{int(T0.timestamp()) * 1000 + 123:015d}-{envelope.event_id}"


def test_an_unknown_event_type_is_rejected_by_number() -> None:
    envelope = JobStory(T0).created().events[0]
    envelope.event_type = 99  # type: ignore[assignment]  # a newer contract's type
    with pytest.raises(ValueError, match="no name defined for value 99"):
        to_document(envelope)
