"""Bulk actions against real RabbitMQ, PostgreSQL and a real processor: RetryFailedJobs and
ReplayDeadLetters (gRPC and HTTP): a dead-lettered job is replayed and runs to completion, a
poison message stays and is reported, a job retried meanwhile is stale, a second replay is a
no-op, and a crash between re-queue and ack does not run a job twice."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pika
import pytest
from google.protobuf import struct_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel

from services.common import amqp, topology
from services.gateway.app import RunningGateway, start
from services.gateway.config import GatewayConfig
from services.gateway.dead_letters import DeadLetters
from services.gateway.service import UnavailableError
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.stack.services import ServiceProcess
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
postgres = server_fixture("postgres", PostgresServer, scope="module")

JOB_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def gateway(rabbitmq: RabbitMQServer, postgres: PostgresServer) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        amqp_url=rabbitmq.info.amqp_url,
        postgres_dsn=postgres.info.dsn,
        grpc_port=0,
        http_port=0,
        backend_timeout_seconds=5.0,
    )
    running = start(config)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def processor(
    rabbitmq: RabbitMQServer,
    postgres: PostgresServer,
    gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    state: Path = tmp_path_factory.mktemp("processor")
    process = ServiceProcess(
        state,
        "processor",
        {
            "AMQP_URL": rabbitmq.info.amqp_url,
            "POSTGRES_DSN": postgres.info.dsn,
            "PROCESSOR_RETRY_BASE_MS": "100",
            "PROCESSOR_RETRY_MAX_MS": "200",
        },
    )
    process.start()
    try:
        yield process
    except BaseException:
        print(process.log_report(40))
        raise
    finally:
        process.stop()


@pytest.fixture(scope="module")
def broker(rabbitmq: RabbitMQServer) -> Iterator[BlockingChannel]:
    connection = amqp.connect(rabbitmq.info.amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    yield channel
    connection.close()


@pytest.fixture
def dead_queue(broker: BlockingChannel, processor: ServiceProcess) -> BlockingChannel:
    """The broker channel with jobs.dead emptied first (the processor is running)."""
    broker.queue_purge(topology.DEAD_QUEUE)
    return broker


@pytest.fixture
def stub(gateway: RunningGateway) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.JobServiceStub(channel)


def submit_fail(stub: gateway_pb2_grpc.JobServiceStub, max_attempts: int, **payload: Any) -> str:
    spec = job_pb2.JobSpec(type="fail", max_attempts=max_attempts, payload=struct_pb2.Struct())
    spec.payload.update(payload)
    return stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec), timeout=10).job_id


def wait_status(
    stub: gateway_pb2_grpc.JobServiceStub, job_id: str, status: job_pb2.JobStatus.ValueType
) -> job_pb2.Job:
    return wait_for(
        lambda: stub.GetJob(gateway_pb2.GetJobRequest(job_id=job_id), timeout=10).job,
        what=f"job {job_id} to become {job_pb2.JobStatus.Name(status)}",
        until=lambda job: job.status == status,
        timeout=JOB_TIMEOUT_S,
    )


def dead_depth(channel: BlockingChannel) -> int:
    declared = channel.queue_declare(topology.DEAD_QUEUE, passive=True)
    return int(declared.method.message_count)


def wait_dead_depth(channel: BlockingChannel, depth: int) -> None:
    wait_for(
        lambda: dead_depth(channel),
        what=f"{depth} messages in jobs.dead",
        until=lambda n: n == depth,
        timeout=JOB_TIMEOUT_S,
    )


def publish_poison(channel: BlockingChannel) -> None:
    channel.basic_publish(
        topology.DEAD_EXCHANGE,
        "",
        b"\xff not a protobuf",
        pika.BasicProperties(type="text/garbage", headers={"x-reason": "undecodable"}),
    )


def http_replay(gateway: RunningGateway) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway.http_port}/jobs:replay-dead-letters", method="POST", data=b""
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 200
        body: dict[str, Any] = json.loads(response.read())
        return body


def dead_lettered_job(stub: gateway_pb2_grpc.JobServiceStub, channel: BlockingChannel) -> str:
    """A `fail` job that exhausts max_attempts=2 but would succeed on attempt 3."""
    before = dead_depth(channel)
    job_id = submit_fail(stub, max_attempts=2, until_attempt=3)
    wait_status(stub, job_id, job_pb2.JOB_STATUS_DEAD_LETTERED)
    wait_dead_depth(channel, before + 1)
    return job_id


def test_replay_requeues_dead_lettered_job_keeps_poison_and_second_replay_is_a_no_op(
    gateway: RunningGateway, stub: gateway_pb2_grpc.JobServiceStub, dead_queue: BlockingChannel
) -> None:
    job_id = dead_lettered_job(stub, dead_queue)
    publish_poison(dead_queue)
    wait_dead_depth(dead_queue, 2)

    first = stub.ReplayDeadLetters(gateway_pb2.ReplayDeadLettersRequest(), timeout=30)

    assert (first.replayed, first.stale, first.kept) == (1, 0, 1)
    assert list(first.replayed_job_ids) == [job_id]
    (kept,) = first.kept_messages
    assert kept.reason.startswith("not a job message")
    assert kept.dead_letter_reason == "undecodable"
    # The job runs again with a fresh budget and this time succeeds (attempt 3).
    done = wait_status(stub, job_id, job_pb2.JOB_STATUS_COMPLETED)
    assert done.attempts == 3
    assert dead_depth(dead_queue) == 1  # only the poison message is left

    second = http_replay(gateway)

    assert second["replayed"] == 0
    assert second["stale"] == 0
    assert second["kept"] == 1
    assert second["kept_messages"][0]["reason"].startswith("not a job message")
    assert dead_depth(dead_queue) == 1


def test_dead_message_of_a_job_retried_meanwhile_is_removed_as_stale(
    gateway: RunningGateway, stub: gateway_pb2_grpc.JobServiceStub, dead_queue: BlockingChannel
) -> None:
    job_id = dead_lettered_job(stub, dead_queue)
    stub.RetryJob(gateway_pb2.RetryJobRequest(job_id=job_id), timeout=10)
    wait_status(stub, job_id, job_pb2.JOB_STATUS_COMPLETED)

    result = http_replay(gateway)

    assert (result["replayed"], result["stale"], result["kept"]) == (0, 1, 0)
    assert result["replayed_job_ids"] == []
    assert dead_depth(dead_queue) == 0
    after = stub.GetJob(gateway_pb2.GetJobRequest(job_id=job_id), timeout=10).job
    assert after.status == job_pb2.JOB_STATUS_COMPLETED  # not run a second time
    assert after.attempts == 3


def test_retry_failed_jobs_requeues_failed_and_dead_lettered_jobs(
    stub: gateway_pb2_grpc.JobServiceStub, dead_queue: BlockingChannel
) -> None:
    failed = submit_fail(stub, max_attempts=3, until_attempt=2, retryable=False)
    wait_status(stub, failed, job_pb2.JOB_STATUS_FAILED)
    dead = dead_lettered_job(stub, dead_queue)

    response = stub.RetryFailedJobs(gateway_pb2.RetryFailedJobsRequest(), timeout=30)

    assert response.retried == 2
    assert wait_status(stub, failed, job_pb2.JOB_STATUS_COMPLETED).attempts == 2
    assert wait_status(stub, dead, job_pb2.JOB_STATUS_COMPLETED).attempts == 3
    again = stub.RetryFailedJobs(gateway_pb2.RetryFailedJobsRequest(), timeout=30)
    assert again.retried == 0


def test_a_crash_between_requeue_and_ack_replays_idempotently(
    rabbitmq: RabbitMQServer, stub: gateway_pb2_grpc.JobServiceStub, dead_queue: BlockingChannel
) -> None:
    job_id = dead_lettered_job(stub, dead_queue)

    def requeue_then_crash(dead_job_id: str) -> object:
        # The re-queue commits (through the real gateway), then the replay dies before its ack.
        stub.RetryJob(gateway_pb2.RetryJobRequest(job_id=dead_job_id), timeout=10)
        raise UnavailableError("simulated crash before the ack")

    crashing = DeadLetters(rabbitmq.info.amqp_url, requeue_then_crash, timeout=5)
    with pytest.raises(UnavailableError):
        crashing.replay()

    assert dead_depth(dead_queue) == 1  # the unacked dead message went back to the queue
    assert wait_status(stub, job_id, job_pb2.JOB_STATUS_COMPLETED).attempts == 3
    again = stub.ReplayDeadLetters(gateway_pb2.ReplayDeadLettersRequest(), timeout=30)
    assert (again.replayed, again.stale, again.kept) == (0, 1, 0)
    after = stub.GetJob(gateway_pb2.GetJobRequest(job_id=job_id), timeout=10).job
    assert (after.status, after.attempts) == (job_pb2.JOB_STATUS_COMPLETED, 3)  # ran once more
