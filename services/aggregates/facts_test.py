"""The pure parts of the aggregates: what an event changes, event order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from google.protobuf.duration_pb2 import Duration
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.aggregates.facts import UnknownEventError, facts_of, is_newer
from services.metrics_engine.sample_events import JobStory

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_job_story_moves_through_statuses_in_order() -> None:
    story = JobStory(T0, job_type="email").created().started(1, 40).retry(1, 100)
    story.started(2, 20).completed(2, 300)
    facts = [facts_of(e) for e in story.events]
    assert [f.status for f in facts] == [
        job_pb2.JOB_STATUS_PENDING,
        job_pb2.JOB_STATUS_RUNNING,
        job_pb2.JOB_STATUS_RETRY_SCHEDULED,
        job_pb2.JOB_STATUS_RUNNING,
        job_pb2.JOB_STATUS_COMPLETED,
    ]
    assert facts[0].job_type == "email" and all(f.job_type == "" for f in facts[1:])
    assert [f.totals_field for f in facts] == [
        "submitted", "started", "retried", "started", "completed",
    ]  # fmt: skip
    assert (facts[1].queue_wait_ms, facts[4].run_ms) == (40, 300)
    assert [f.terminal for f in facts] == [False, False, False, False, True]
    # Each event orders after the one before it, even if they shared a timestamp.
    for before, after in itertools.pairwise(facts):
        assert is_newer(after.occurred_ms, after.sequence, (before.occurred_ms, before.sequence))
        assert not is_newer(
            before.occurred_ms, before.sequence, (after.occurred_ms, after.sequence)
        )


def test_same_timestamp_orders_by_attempt_then_stage() -> None:
    story = JobStory(T0).created().started(1, 0).retry(1, 0).started(2, 0).failed(2, 0)
    facts = [facts_of(e) for e in story.events]
    assert len({f.occurred_ms for f in facts}) == 1
    assert [f.sequence for f in facts] == sorted(f.sequence for f in facts)
    assert facts[-1].throughput_field == "failed"


def test_dead_lettered_counts_as_failed_throughput_and_terminal() -> None:
    facts = facts_of(JobStory(T0).created().dead_lettered(3).events[-1])
    assert facts.status == job_pb2.JOB_STATUS_DEAD_LETTERED
    assert (facts.totals_field, facts.throughput_field, facts.terminal) == (
        "dead_lettered", "failed", True,
    )  # fmt: skip


def test_an_envelope_without_payload_is_rejected_by_id() -> None:
    with pytest.raises(UnknownEventError, match="e-1"):
        facts_of(event_pb2.EventEnvelope(event_id="e-1", job_id="j"))


def test_times_are_whole_milliseconds_as_protobuf_converts_them() -> None:
    story = JobStory(T0).created().started(1, 0).completed(1, 0)
    _, started, completed = story.events
    started.occurred_at.nanos = 7_999_999  # rounds down
    # A producer's clock running behind gives a negative wait: rounded toward zero.
    started.job_started.queue_wait.CopyFrom(Duration(nanos=-1_500_000))
    completed.job_completed.run_duration.CopyFrom(Duration(seconds=2, nanos=999_999))
    assert facts_of(started).occurred_ms == int(T0.timestamp()) * 1000 + 7
    assert facts_of(started).queue_wait_ms == -1
    assert facts_of(completed).run_ms == 2000


def test_an_occurred_at_outside_protobufs_range_is_rejected_by_id() -> None:
    # Raised as anything else, it would fail the consumer's whole batch at every redelivery.
    envelope = JobStory(T0).created().events[0]
    envelope.occurred_at.nanos = -1
    with pytest.raises(UnknownEventError, match=f"{envelope.event_id}.*occurred_at"):
        facts_of(envelope)


def test_an_event_type_that_is_not_its_payloads_is_rejected_by_id() -> None:
    # The event store names a document by its type: an unknown one would fail its batch forever.
    envelope = JobStory(T0).created().events[0]
    envelope.event_type = 99  # type: ignore[assignment]  # a newer contract's type
    with pytest.raises(UnknownEventError, match=f"{envelope.event_id}.*event_type 99"):
        facts_of(envelope)
