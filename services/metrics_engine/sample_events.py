"""Realistic lifecycle event sequences for tests (testonly): built with services.common.events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pika
from google.protobuf.duration_pb2 import Duration
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.common import amqp, events, topology

PRODUCER = event_pb2.Producer(service="test", instance_id="test/1", version="0")


def _ms(milliseconds: int) -> Duration:
    duration = Duration()
    duration.FromMilliseconds(milliseconds)
    return duration


class JobStory:
    """One job's events, each a step later than the last, with versions 1, 2, 3, ..."""

    def __init__(self, created: datetime, job_type: str = "echo", job_id: str = "") -> None:
        self.job_id = job_id or str(uuid.uuid4())
        self.job_type = job_type
        self.now = created
        self.version = 0
        self.events: list[event_pb2.EventEnvelope] = []

    def _add(self, after: timedelta, **payload: object) -> event_pb2.EventEnvelope:
        self.now += after
        self.version += 1
        envelope = events.envelope(
            job_id=self.job_id,
            version=self.version,
            occurred_at=self.now,
            correlation_id=f"corr-{self.job_id[:8]}",
            producer=PRODUCER,
            **payload,
        )
        self.events.append(envelope)
        return envelope

    def created(self) -> JobStory:
        spec = job_pb2.JobSpec(type=self.job_type)
        spec.payload.update({"n": len(self.events)})
        self._add(timedelta(0), job_created=event_pb2.JobCreated(spec=spec, max_attempts=3))
        return self

    def started(self, attempt: int, queue_wait_ms: int) -> JobStory:
        started = event_pb2.JobStarted(attempt=attempt, worker="w1", queue_wait=_ms(queue_wait_ms))
        self._add(timedelta(milliseconds=queue_wait_ms), job_started=started)
        return self

    def retry(self, attempt: int, run_ms: int) -> JobStory:
        retry = event_pb2.JobRetryScheduled(
            attempt=attempt, delay=_ms(100), error="boom", worker="w1"
        )
        self._add(timedelta(milliseconds=run_ms), job_retry_scheduled=retry)
        return self

    def completed(self, attempt: int, run_ms: int) -> JobStory:
        done = event_pb2.JobCompleted(attempt=attempt, worker="w1", run_duration=_ms(run_ms))
        self._add(timedelta(milliseconds=run_ms), job_completed=done)
        return self

    def failed(self, attempt: int, run_ms: int) -> JobStory:
        failed = event_pb2.JobFailed(
            attempt=attempt, worker="w1", run_duration=_ms(run_ms), error="bad input"
        )
        self._add(timedelta(milliseconds=run_ms), job_failed=failed)
        return self

    def dead_lettered(self, attempts: int) -> JobStory:
        dead = event_pb2.JobDeadLettered(
            reason="max_attempts exhausted", attempts=attempts, dead_letter_queue="jobs.dead"
        )
        self._add(timedelta(milliseconds=1), job_dead_lettered=dead)
        return self


def completed_job_batches(
    jobs: int, start: datetime, batch_events: int, new_job_id: Callable[[], str] | None = None
) -> Iterator[list[event_pb2.EventEnvelope]]:
    """The events of `jobs` jobs, created a millisecond apart from `start`, each created, started
    and completed, in batches of at least `batch_events` (the last one: what is left), as the
    metrics engine writes them at full speed. `new_job_id` makes the ids (default: random)."""
    batch: list[event_pb2.EventEnvelope] = []
    for n in range(jobs):
        job_id = new_job_id() if new_job_id else ""
        story = JobStory(start + timedelta(milliseconds=n), job_id=job_id).created()
        batch += story.started(1, 3).completed(1, 1).events
        if len(batch) >= batch_events:
            yield batch
            batch = []
    if batch:
        yield batch


def publish(
    amqp_url: str, envelopes: list[event_pb2.EventEnvelope], *, batched: bool = True
) -> None:
    """Publishes events as the services do: confirmed, persistent, to the events exchange by
    type, batched per type (services/common/events.py); `batched=False` sends one plain
    EventEnvelope message per event, the pre-batching form consumers must still accept."""
    connection = amqp.connect(amqp_url)
    try:
        channel = amqp.confirmed_channel(connection)
        topology.declare(channel)
        groups = [envelopes] if batched else [[e] for e in envelopes]
        for message in (m for group in groups for m in events.to_messages(group)):
            properties = pika.BasicProperties(
                content_type="application/x-protobuf",
                delivery_mode=pika.DeliveryMode.Persistent,
                type=message.message_type,
                message_id=message.message_id,
            )
            channel.basic_publish(
                topology.EVENTS_EXCHANGE,
                message.routing_key,
                message.body,
                properties=properties,
                mandatory=True,
            )
    finally:
        connection.close()
