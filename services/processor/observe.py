"""Test helpers that watch the processor from outside: job rows, attempts, events, queues."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel

from services.common import events, topology
from services.jobstore import store
from tools.testing.waiting import wait_for


def wait_status(
    conn: store.Conn, job_id: str, status: job_pb2.JobStatus.ValueType, timeout: float = 30
) -> job_pb2.Job:
    def current() -> job_pb2.Job | None:
        with conn.transaction():
            return store.get_job(conn, job_id)

    job = wait_for(
        current,
        what=f"job {job_id} to be {job_pb2.JobStatus.Name(status)}",
        until=lambda job: job is not None and job.status == status,
        timeout=timeout,
    )
    assert job is not None
    return job


def attempts(conn: store.Conn, job_id: str) -> list[job_pb2.JobAttempt]:
    with conn.transaction():
        return store.get_attempts(conn, job_id)


@dataclass(frozen=True)
class Delivery:
    """One message taken from the events exchange."""

    routing_key: str
    message_type: str
    envelopes: list[event_pb2.EventEnvelope]


class EventLog:
    """Every event published, read from a queue bound to the events exchange."""

    def __init__(self, channel: BlockingChannel) -> None:
        self._channel = channel
        self.queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self.queue, topology.EVENTS_EXCHANGE, "job.#")
        self.by_job: dict[str, list[event_pb2.EventEnvelope]] = defaultdict(list)
        self.message_ids: dict[str, str] = {}  # event id -> id of the message that carried it
        self.deliveries: list[Delivery] = []

    def poll(self) -> None:
        while True:
            method, properties, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return
            envelopes = events.from_message(properties.type, body)
            self.deliveries.append(Delivery(method.routing_key, properties.type, envelopes))
            for envelope in envelopes:
                self.message_ids[envelope.event_id] = properties.message_id
                self.by_job[envelope.job_id].append(envelope)

    def since(self, count: int) -> list[Delivery]:
        """The messages taken after the first `count`."""
        self.poll()
        return self.deliveries[count:]

    def of(self, job_id: str) -> list[event_pb2.EventEnvelope]:
        self.poll()
        return list(self.by_job[job_id])

    def wait(self, job_id: str, kind: str, timeout: float = 30) -> list[event_pb2.EventEnvelope]:
        return wait_for(
            lambda: self.of(job_id),
            what=f"a {kind} event of job {job_id}",
            until=lambda seen: any(e.WhichOneof("payload") == kind for e in seen),
            timeout=timeout,
        )


@dataclass(frozen=True)
class DeadMessage:
    body: bytes
    headers: dict[str, Any]


class DeadLetters:
    """Messages taken from jobs.dead by this test."""

    def __init__(self, channel: BlockingChannel) -> None:
        self._channel = channel
        self.seen: list[DeadMessage] = []

    def poll(self) -> list[DeadMessage]:
        while True:
            method, properties, body = self._channel.basic_get(topology.DEAD_QUEUE, auto_ack=True)
            if method is None:
                return list(self.seen)
            self.seen.append(DeadMessage(body, dict(properties.headers or {})))

    def wait(self, match: Any, what: str, timeout: float = 30) -> DeadMessage:
        found = wait_for(
            lambda: [m for m in self.poll() if match(m)],
            what=what,
            timeout=timeout,
        )
        return found[0]
