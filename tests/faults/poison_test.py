"""Poison on the work queue (not a protobuf, a wrong contract version, an unknown job type, no
headers, another message type) mixed into a stream: each lands in jobs.dead with RabbitMQ's
x-death saying why, none blocks the queue, and the stream completes consistently."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.common import amqp, http_json, rabbitmq_management, topology
from services.common.wire import ATTEMPT_HEADER, CONTRACT_MAJOR, VERSION_HEADER
from tests.faults.consistency import check_consistency
from tests.faults.stack import Stack
from tests.faults.stream import JobStream
from tools.testing.waiting import wait_for

pytestmark = [pytest.mark.integration]

JOBS = 5000
CASE_HEADER = "x-fault-case"  # ours: survives dead-lettering, names the case in jobs.dead
VALID_HEADERS: dict[str, object] = {ATTEMPT_HEADER: 1, VERSION_HEADER: CONTRACT_MAJOR}


def job_body(job_type: str) -> bytes:
    job = job_pb2.Job(
        id=str(uuid.uuid4()), type=job_type, max_attempts=3, timeout=Duration(seconds=30)
    )
    return job.SerializeToString()


# case -> (body, headers, the processor's poison kind for it)
POISON: dict[str, tuple[bytes, dict[str, object], str]] = {
    "not-protobuf": (b"\xff\xfe this is not a protobuf \x00", VALID_HEADERS, "undecodable"),
    "wrong-version": (
        job_body("noop"),
        {**VALID_HEADERS, VERSION_HEADER: "99"},
        "contract_version",
    ),
    "unknown-type": (job_body("no-such-type"), VALID_HEADERS, "unknown_type"),
    "no-headers": (job_body("noop"), {}, "missing_header"),
    "wrong-message": (
        event_pb2.EventEnvelope(event_id=str(uuid.uuid4())).SerializeToString(),
        VALID_HEADERS,
        "undecodable",
    ),
}


def publish_poison(stack: Stack) -> None:
    connection = amqp.connect(stack.rabbitmq.info.amqp_url, connection_name="fault-test")
    try:
        channel = amqp.confirmed_channel(connection)
        for case, (body, headers, _) in POISON.items():
            amqp.publish_confirmed(
                channel,
                exchange=topology.JOBS_EXCHANGE,
                routing_key=topology.WORK_ROUTING_KEY,
                body=body,
                headers={**headers, CASE_HEADER: case},
                content_type="application/x-protobuf",
            )
    finally:
        connection.close()


def dead_letters(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """The headers of every message in jobs.dead, by fault case (taken off the queue)."""
    found: dict[str, list[dict[str, Any]]] = {}
    connection = amqp.connect(stack.rabbitmq.info.amqp_url, connection_name="fault-test")
    try:
        channel = connection.channel()
        while (delivery := amqp.consume_one(channel, topology.DEAD_QUEUE, timeout=2)) is not None:
            case = delivery.headers.get(CASE_HEADER)
            key = case.decode() if isinstance(case, bytes) else str(case)
            found.setdefault(key, []).append(dict(delivery.headers))
    finally:
        connection.close()
    return found


def poison_counts(stack: Stack) -> dict[str, float]:
    counts: dict[str, float] = {}
    for processor in stack.processors:
        for line in http_json.get_text(f"{processor.info.url}/metrics").splitlines():
            if line.startswith("processor_poison_messages_total{"):
                labels, value = line.rsplit(" ", 1)
                kind = labels.split('kind="', 1)[1].split('"', 1)[0]
                counts[kind] = counts.get(kind, 0) + float(value)
    return counts


@pytest.fixture(scope="module")
def accepted() -> set[str]:
    """Every job id accepted in this module (the tests share one stack)."""
    return set()


def test_poison_is_dead_lettered_with_a_reason_and_never_blocks(
    stack: Stack, accepted: set[str]
) -> None:
    stream = JobStream(stack.gateway.info.grpc_target, stack.gateway.info.url, total=JOBS)
    stream.start()
    try:
        stream.wait_accepted(JOBS // 5, timeout=180)
        publish_poison(stack)
        stream.wait_accepted(JOBS // 2, timeout=180)
        publish_poison(stack)  # a second round, in the thick of the stream
        stream.wait(timeout=300)
    finally:
        stream.stop()
        accepted.update(stream.job_ids())
    check_consistency(
        stack, stream.job_ids(), keys=stream.keys(), expect_status="completed", timeout=240
    )

    expected_kinds = {kind for _, _, kind in POISON.values()}
    counts = wait_for(
        lambda: poison_counts(stack),
        until=lambda c: all(c.get(kind, 0) >= 2 for kind in expected_kinds),
        what=f"processors to count poison of kinds {sorted(expected_kinds)} twice each",
        timeout=30,
    )
    print(f"poison counted by kind: {counts}")
    dead = dead_letters(stack)
    assert {case: len(copies) for case, copies in dead.items()} == dict.fromkeys(POISON, 2)
    for case, headers in ((case, h) for case, copies in dead.items() for h in copies):
        deaths = headers.get("x-death")
        assert isinstance(deaths, list) and deaths, f"{case}: no x-death header: {headers}"
        death = deaths[0]
        reason = death.get("reason")
        queue = death.get("queue")
        assert (reason.decode() if isinstance(reason, bytes) else reason) == "rejected", death
        assert (queue.decode() if isinstance(queue, bytes) else queue) == topology.WORK_QUEUE
        assert int(death.get("count", 0)) == 1, f"{case}: dead-lettered more than once: {death}"


def test_orphan_work_message_of_a_resubmitted_key_does_not_block(
    stack: Stack, accepted: set[str]
) -> None:
    """What a broker outage leaves behind: the gateway published a job's work message, lost the
    confirm, rolled back and answered 503; the client resubmitted with the same idempotency key
    and got a new job. The orphan (an id PostgreSQL lacks, a key another job owns) must not run
    a second job for the key, nor stall the queue."""
    first = JobStream(
        stack.gateway.info.grpc_target, stack.gateway.info.url, total=200, name="orphan"
    ).start()
    first.wait(timeout=120)
    key, owner = next(iter(first.keys().items()))
    orphan = job_pb2.Job(
        id=str(uuid.uuid4()),
        type="noop",
        idempotency_key=key,
        max_attempts=3,
        timeout=Duration(seconds=30),
        status=job_pb2.JOB_STATUS_PENDING,
    )
    connection = amqp.connect(stack.rabbitmq.info.amqp_url, connection_name="fault-test")
    try:
        amqp.publish_confirmed(
            amqp.confirmed_channel(connection),
            exchange=topology.JOBS_EXCHANGE,
            routing_key=topology.WORK_ROUTING_KEY,
            body=orphan.SerializeToString(),
            headers=VALID_HEADERS,
            content_type="application/x-protobuf",
        )
    finally:
        connection.close()
    after = JobStream(
        stack.gateway.info.grpc_target, stack.gateway.info.url, total=500, name="after-orphan"
    ).start()
    after.wait(timeout=120)
    accepted.update(first.job_ids() | after.job_ids())
    check_consistency(
        stack, accepted, keys={**first.keys(), **after.keys()}, expect_status="completed"
    )
    assert owner in accepted
    info = stack.rabbitmq.info
    wait_for(
        lambda: (
            rabbitmq_management.queue(
                info.management_url, topology.WORK_QUEUE, auth=(info.username, info.password)
            ).messages
        ),
        until=lambda depth: depth == 0,
        what="jobs.work to drain (the orphan settled, not redelivered forever)",
        timeout=60,
    )
