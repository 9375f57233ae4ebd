"""The wire form of lifecycle events: batching per event type, and decoding both forms."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2

from services.common import events, ids
from services.common.wire import EVENT_BATCH_MESSAGE_TYPE, EVENT_MESSAGE_TYPE, JOB_MESSAGE_TYPE

PRODUCER = event_pb2.Producer(service="test", instance_id="test/1", version="1")
START = datetime(2026, 1, 1, tzinfo=UTC)


def _event(job: str, version: int, **payload: object) -> event_pb2.EventEnvelope:
    return events.envelope(
        job_id=job,
        version=version,
        occurred_at=START + timedelta(seconds=version),
        correlation_id=f"corr-{job}",
        producer=PRODUCER,
        **payload,
    )


def started(job: str, version: int = 2) -> event_pb2.EventEnvelope:
    return _event(job, version, job_started=event_pb2.JobStarted(attempt=1, worker="w"))


def completed(job: str, version: int = 3) -> event_pb2.EventEnvelope:
    return _event(job, version, job_completed=event_pb2.JobCompleted(attempt=1, worker="w"))


def decoded(messages: list[events.EventMessage]) -> list[event_pb2.EventEnvelope]:
    return [e for m in messages for e in events.from_message(m.message_type, m.body)]


def test_one_batch_per_event_type_routed_by_that_type() -> None:
    mixed = [started("a"), completed("a"), started("b"), completed("b"), started("c")]
    messages = events.to_messages(mixed)
    assert [m.routing_key for m in messages] == ["job.started", "job.completed"]
    assert all(m.message_type == EVENT_BATCH_MESSAGE_TYPE for m in messages)
    for message in messages:
        carried = events.from_message(message.message_type, message.body)
        assert {events.routing_key(e) for e in carried} == {message.routing_key}
        assert message.event_ids == tuple(e.event_id for e in carried)


def test_round_trip_keeps_every_event_and_its_order_within_a_type() -> None:
    mixed = [started(str(i)) for i in range(7)] + [completed(str(i)) for i in range(5)]
    assert decoded(events.to_messages(mixed)) == mixed


def test_large_groups_are_split_at_max_events() -> None:
    many = [completed(str(i)) for i in range(5)]
    messages = events.to_messages(many, max_events=2)
    assert [len(m.event_ids) for m in messages] == [2, 2, 1]
    assert decoded(messages) == many
    with pytest.raises(ValueError, match="max_events"):
        events.to_messages(many, max_events=0)


def test_lone_event_travels_as_a_plain_envelope_with_its_event_id() -> None:
    (message,) = events.to_messages([completed("a")])
    assert message.message_type == EVENT_MESSAGE_TYPE
    assert message.message_id == completed("a").event_id
    assert message.correlation_id == "corr-a"
    assert event_pb2.EventEnvelope.FromString(message.body) == completed("a")


def test_republishing_the_same_events_repeats_the_message_ids() -> None:
    first = events.to_messages([completed("a"), completed("b")])
    again = events.to_messages([completed("a"), completed("b")])
    assert [m.message_id for m in first] == [m.message_id for m in again]
    other = events.to_messages([completed("a"), completed("c")])
    assert first[0].message_id != other[0].message_id
    assert first[0].correlation_id is None  # the events belong to different jobs


def test_single_envelope_messages_still_decode() -> None:
    envelope = started("old")
    assert events.from_message(EVENT_MESSAGE_TYPE, envelope.SerializeToString()) == [envelope]


@pytest.mark.parametrize(
    ("message_type", "body", "error"),
    [
        (JOB_MESSAGE_TYPE, b"", "no event message"),
        (None, completed("a").SerializeToString(), "no event message"),
        (EVENT_BATCH_MESSAGE_TYPE, b"\xff\xfe not protobuf", "undecodable"),
        (EVENT_MESSAGE_TYPE, b"\xff\xfe not protobuf", "undecodable"),
        (EVENT_BATCH_MESSAGE_TYPE, b"", "no events"),
    ],
)
def test_anything_else_is_a_clear_error(message_type: str | None, body: bytes, error: str) -> None:
    with pytest.raises(events.EventDecodeError, match=error):
        events.from_message(message_type, body)


def from_datetime(when: datetime) -> Timestamp:
    expected = Timestamp()
    expected.FromDatetime(when)
    return expected


@pytest.mark.parametrize(
    "when",
    [
        START,
        datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 5),  # naive: taken as UTC
    ],
)
def test_a_timestamp_is_what_from_datetime_makes(when: datetime) -> None:
    assert events.timestamp(when) == from_datetime(when)
    assert events.timestamp(when) == from_datetime(when)  # again, now remembered


def test_the_two_instants_of_an_ambiguous_local_time_keep_their_timestamps() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25; `fold` picks the second, an hour later.
    first = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    second = first.replace(fold=1)
    assert events.timestamp(first) == from_datetime(first)
    assert events.timestamp(second) == from_datetime(second)
    assert events.timestamp(second).seconds - events.timestamp(first).seconds == 3600


@pytest.mark.parametrize(
    ("when", "producer"),
    [(START, PRODUCER), (datetime(1970, 1, 1, tzinfo=UTC), event_pb2.Producer())],
)
def test_an_envelope_has_exactly_the_bytes_of_its_fields_given_at_once(
    when: datetime, producer: event_pb2.Producer
) -> None:
    payload = event_pb2.JobCancelled()  # empty, yet present
    expected = event_pb2.EventEnvelope(
        event_id=str(uuid.uuid5(ids.EVENT_NAMESPACE, "job-1/4")),
        event_type=event_pb2.EVENT_TYPE_JOB_CANCELLED,
        occurred_at=from_datetime(when),
        correlation_id="corr-1",
        idempotency_key="job-1/4",
        producer=producer,
        contract_version=events.CONTRACT_VERSION,
        job_id="job-1",
        job_cancelled=payload,
    )
    built = events.envelope(
        job_id="job-1",
        version=4,
        occurred_at=when,
        correlation_id="corr-1",
        producer=producer,
        job_cancelled=payload,
    )
    assert built.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
