"""Event <-> MongoDB document: the contract's JSON names, a real datetime, a lossless round trip."""

from __future__ import annotations

from datetime import UTC, datetime

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
