"""The gateway against real RabbitMQ and PostgreSQL: durable acceptance, idempotency, errors
over both transports, broker and database outages, cancel/retry, grpcurl, and the real process.

Backends are reached through TCP proxies so a test can cut one off and bring it back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from observatory.events.v1 import event_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel

from services.common import amqp, events, ids, topology
from services.gateway import publisher as gateway_publisher
from services.gateway.app import RunningGateway, start
from services.gateway.integration_support import Delivery, backend_proxies, drain, gateway_config
from services.gateway.tcp_proxy import TcpProxy
from tools.grpcurl.grpcurl import run as grpcurl
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_ports, http_status
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
postgres = server_fixture("postgres", PostgresServer, scope="module")

EVENTS_QUEUE = "gateway-test.events"
CONTROL_QUEUE = "gateway-test.control"
OUTAGE_BOUND_SECONDS = 5.0


@pytest.fixture(scope="module")
def proxies(rabbitmq: RabbitMQServer, postgres: PostgresServer) -> Iterator[dict[str, TcpProxy]]:
    with backend_proxies(rabbitmq, postgres) as both:
        yield both


@pytest.fixture(scope="module")
def gateway(
    rabbitmq: RabbitMQServer, postgres: PostgresServer, proxies: dict[str, TcpProxy]
) -> Iterator[RunningGateway]:
    running = start(gateway_config(rabbitmq, postgres, proxies))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def broker(rabbitmq: RabbitMQServer) -> Iterator[BlockingChannel]:
    """A channel on the real broker with test queues on the events and control exchanges."""
    connection = amqp.connect(rabbitmq.info.amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    channel.queue_declare(EVENTS_QUEUE)
    channel.queue_bind(EVENTS_QUEUE, topology.EVENTS_EXCHANGE, "job.#")
    channel.queue_declare(CONTROL_QUEUE)
    channel.queue_bind(CONTROL_QUEUE, topology.CONTROL_EXCHANGE)
    yield channel
    connection.close()


@pytest.fixture(scope="module")
def db(postgres: PostgresServer, gateway: RunningGateway) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres.info.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def queues(broker: BlockingChannel) -> BlockingChannel:
    """The broker channel with the test's queues emptied first."""
    for queue in (
        topology.WORK_QUEUE,
        EVENTS_QUEUE,
        CONTROL_QUEUE,
        *topology.METRICS_ENGINE_QUEUES,
    ):
        broker.queue_purge(queue)
    return broker


@pytest.fixture
def stub(gateway: RunningGateway) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.JobServiceStub(channel)


def http(
    gateway: RunningGateway, method: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway.http_port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def row(db: psycopg.Connection[Any], job_id: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT status, version, attempts, max_attempts, cancel_requested FROM jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def job_count(db: psycopg.Connection[Any]) -> int:
    result = db.execute("SELECT count(*) FROM jobs").fetchone()
    assert result is not None
    return int(result[0])


def envelopes(messages: list[Delivery]) -> list[event_pb2.EventEnvelope]:
    return [e for properties, body in messages for e in events.from_message(properties.type, body)]


def assert_work_message(message: Delivery, job_id: str, attempt: int, priority: int) -> None:
    properties, body = message
    job = job_pb2.Job.FromString(body)
    assert job.id == job_id
    assert properties.headers == {"x-attempt": attempt, "x-contract-version": "1"}
    assert properties.priority == priority
    assert properties.content_type == "application/x-protobuf"
    assert properties.type == "observatory.jobs.v1.Job"
    assert properties.delivery_mode == 2


# -- acceptance --------------------------------------------------------------------------------


def test_http_submit_is_recorded_queued_and_announced(
    gateway: RunningGateway, queues: BlockingChannel, db: psycopg.Connection[Any]
) -> None:
    status, body, headers = http(
        gateway,
        "POST",
        "/jobs",
        {"type": "echo", "payload": {"message": "hi"}, "priority": 7},
        **{"X-Correlation-Id": "trace-http", "Content-Type": "application/json"},
    )
    assert status == 202
    assert headers["x-correlation-id"] == "trace-http"
    job_id = body["job_id"]
    assert body == {
        "job_id": job_id,
        "event_id": ids.event_id(job_id, 1),
        "status": "JOB_STATUS_PENDING",
        "duplicate": False,
    }
    (work,) = drain(queues, topology.WORK_QUEUE)
    assert_work_message(work, job_id, attempt=1, priority=7)
    assert job_pb2.Job.FromString(work[1]).correlation_id == "trace-http"
    ((properties, raw),) = drain(queues, EVENTS_QUEUE)
    (created,) = events.from_message(properties.type, raw)
    assert created.event_id == body["event_id"] == properties.message_id
    assert created.WhichOneof("payload") == "job_created"
    assert created.job_created.spec.type == "echo"
    assert created.job_created.max_attempts == 3
    assert created.correlation_id == "trace-http"
    assert created.producer.service == "gateway"
    assert row(db, job_id) == ("pending", 1, 0, 3, False)


def test_grpc_submit_and_batch_are_durable(
    stub: gateway_pb2_grpc.JobServiceStub, queues: BlockingChannel, db: psycopg.Connection[Any]
) -> None:
    response = stub.SubmitJob(
        gateway_pb2.SubmitJobRequest(spec=job_pb2.JobSpec(type="noop", max_attempts=5)),
        timeout=10,
    )
    assert response.status == job_pb2.JOB_STATUS_PENDING and not response.duplicate
    assert row(db, response.job_id) == ("pending", 1, 0, 5, False)
    batch = stub.SubmitJobs(
        gateway_pb2.SubmitJobsRequest(
            specs=[job_pb2.JobSpec(type="noop", priority=p) for p in range(10)]
        ),
        timeout=10,
    )
    ids = [r.job_id for r in batch.results]
    assert len(set(ids)) == 10
    work = drain(queues, topology.WORK_QUEUE)
    # The queue is a priority queue: the highest priority comes out first.
    assert [job_pb2.Job.FromString(body).id for _, body in work[:1]] == [ids[9]]
    assert {job_pb2.Job.FromString(body).id for _, body in work} == {response.job_id, *ids}
    messages = drain(queues, EVENTS_QUEUE)
    created = envelopes(messages)
    assert {e.job_id for e in created} == {response.job_id, *ids}
    # The single submit's event travels alone, the batch's ten in one EventBatch message.
    assert sorted(len(envelopes([m])) for m in messages) == [1, 10]
    assert all(row(db, job_id) == ("pending", 1, 0, 3, False) for job_id in ids)


def test_idempotent_resubmission_returns_the_job_and_publishes_nothing(
    gateway: RunningGateway,
    stub: gateway_pb2_grpc.JobServiceStub,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    key = f"order-{uuid.uuid4()}"
    status, first, _ = http(gateway, "POST", "/jobs", {"type": "noop", "idempotency_key": key})
    assert status == 202 and not first["duplicate"]
    assert len(drain(queues, topology.WORK_QUEUE)) == 1
    before = job_count(db)
    status, again, _ = http(gateway, "POST", "/jobs", {"type": "noop", "idempotency_key": key})
    assert status == 202
    assert again == {**first, "duplicate": True}
    over_grpc = stub.SubmitJob(
        gateway_pb2.SubmitJobRequest(spec=job_pb2.JobSpec(type="noop", idempotency_key=key)),
        timeout=10,
    )
    assert (over_grpc.job_id, over_grpc.duplicate) == (first["job_id"], True)
    assert job_count(db) == before
    assert drain(queues, topology.WORK_QUEUE) == []
    assert len(drain(queues, EVENTS_QUEUE)) == 1  # only the original job.created


# -- bad input -----------------------------------------------------------------------------------

BAD_SPECS = [
    ({"type": "noop", "priority": 10}, {"priority": 10}, "priority"),
    ({"type": "nope"}, {"type": "nope"}, "type"),
    ({"type": "sleep", "payload": {}}, {"type": "sleep"}, "payload.seconds"),
    ({"type": "noop", "max_attempts": 500}, {"max_attempts": 500}, "max_attempts"),
    (
        {"type": "echo", "payload": {"message": "x" * 2000}},
        {"type": "echo", "payload": {"message": "x" * 2000}},
        "payload",
    ),
]


@pytest.mark.parametrize("case", BAD_SPECS, ids=[case[2] for case in BAD_SPECS])
def test_bad_input_is_refused_naming_the_field_over_both_transports(
    gateway: RunningGateway,
    stub: gateway_pb2_grpc.JobServiceStub,
    db: psycopg.Connection[Any],
    case: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    json_spec, proto_fields, field = case
    before = job_count(db)
    status, body, _ = http(gateway, "POST", "/jobs", json_spec)
    assert status == 400
    assert field in [d["field"] for d in body["details"]]
    spec = job_pb2.JobSpec(type="noop")
    for name, value in proto_fields.items():
        if name == "payload":
            spec.payload.update(value)
        else:
            setattr(spec, name, value)
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"spec.{field}" in (error.value.details() or "")
    assert job_count(db) == before


def test_bad_batches_ids_and_bodies(
    gateway: RunningGateway, stub: gateway_pb2_grpc.JobServiceStub
) -> None:
    specs: list[dict[str, Any]] = [{"type": "noop"} for _ in range(5)]
    specs[3]["priority"] = 99
    status, body, _ = http(gateway, "POST", "/jobs:batch", {"specs": specs})
    assert (status, body["details"][0]["field"]) == (400, "specs[3].priority")
    protos = [job_pb2.JobSpec(type="noop") for _ in range(5)]
    protos[3].priority = 99
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJobs(gateway_pb2.SubmitJobsRequest(specs=protos), timeout=10)
    assert "specs[3].priority" in (error.value.details() or "")
    assert http(gateway, "GET", "/jobs/not-a-uuid")[0] == 400
    assert http(gateway, "GET", f"/jobs/{uuid.uuid4()}")[0] == 404
    for method, request in (
        (stub.GetJob, gateway_pb2.GetJobRequest(job_id="not-a-uuid")),
        (stub.GetJob, gateway_pb2.GetJobRequest(job_id=str(uuid.uuid4()))),
    ):
        with pytest.raises(grpc.RpcError) as error:
            method(request, timeout=10)
        assert error.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    huge = {"type": "echo", "payload": {"message": "x" * 70_000}}
    assert http(gateway, "POST", "/jobs", huge)[0] == 413


# -- outages -------------------------------------------------------------------------------------


def refused_quickly(gateway: RunningGateway) -> None:
    began = time.monotonic()
    status, body, headers = http(gateway, "POST", "/jobs", {"type": "noop"})
    assert (status, body["error"]) == (503, "unavailable")
    assert headers["retry-after"] == "1"
    assert time.monotonic() - began < OUTAGE_BOUND_SECONDS
    began = time.monotonic()
    with (
        grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        pytest.raises(grpc.RpcError) as error,
    ):
        gateway_pb2_grpc.JobServiceStub(channel).SubmitJob(
            gateway_pb2.SubmitJobRequest(spec=job_pb2.JobSpec(type="noop")), timeout=10
        )
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - began < OUTAGE_BOUND_SECONDS
    assert http(gateway, "GET", "/readyz")[0] == 503


def accepts_again(gateway: RunningGateway) -> str:
    _, body, _ = wait_for(
        lambda: http(gateway, "POST", "/jobs", {"type": "noop"}),
        what="the gateway to accept jobs again",
        until=lambda result: result[0] == 202,
        timeout=20,
    )
    assert http(gateway, "GET", "/readyz")[0] == 200
    return str(body["job_id"])


def test_database_outage_is_a_quick_503_that_writes_and_sends_nothing(
    gateway: RunningGateway,
    proxies: dict[str, TcpProxy],
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    before = job_count(db)
    proxies["pg"].close()
    try:
        for _ in range(3):
            refused_quickly(gateway)
        assert job_count(db) == before
        # Nothing reaches the broker for a change that did not commit (bug 5 was job.created
        # events of jobs that never existed).
        assert drain(queues, topology.WORK_QUEUE) == []
        assert drain(queues, EVENTS_QUEUE) == []
    finally:
        proxies["pg"].open()
    job_id = accepts_again(gateway)
    assert row(db, job_id) == ("pending", 1, 0, 3, False)


def test_broker_outage_refuses_quickly_and_delivers_every_accepted_job(
    gateway: RunningGateway,
    proxies: dict[str, TcpProxy],
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    before = job_count(db)
    proxies["amqp"].close()
    try:
        # The gateway learns of the outage on its next publish: that submit has committed by
        # then, so it is accepted and its messages wait in the outbox. Every later submit is
        # refused before anything is written.
        status, body, _ = http(gateway, "POST", "/jobs", {"type": "noop"})
        accepted = [str(body["job_id"])] if status == 202 else []
        assert status in (202, 503), body
        for _ in range(3):
            refused_quickly(gateway)
        assert job_count(db) == before + len(accepted)
    finally:
        proxies["amqp"].open()
    accepted.append(accepts_again(gateway))
    # The relay sends what the outage left in the outbox (after its grace period).
    work: list[str] = []

    def queued() -> list[str]:
        work.extend(job_pb2.Job.FromString(b).id for _, b in drain(queues, topology.WORK_QUEUE))
        return work

    wait_for(
        queued,
        what="the work messages of every accepted job",
        until=lambda ids: set(accepted) <= set(ids),
        timeout=30,
    )
    assert sorted(work) == sorted(accepted)  # each exactly once


# -- cancel and retry ----------------------------------------------------------------------------


def submit(gateway: RunningGateway) -> str:
    status, body, _ = http(gateway, "POST", "/jobs", {"type": "noop", "max_attempts": 5})
    assert status == 202
    return str(body["job_id"])


def test_cancel_then_retry_a_pending_job(
    gateway: RunningGateway,
    stub: gateway_pb2_grpc.JobServiceStub,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    job_id = submit(gateway)
    drain(queues, EVENTS_QUEUE)
    drain(queues, topology.WORK_QUEUE)
    status, body, _ = http(gateway, "POST", f"/jobs/{job_id}/cancel?reason=changed+my+mind")
    assert status == 200
    assert body["job"]["status"] == "JOB_STATUS_CANCELLED" and "finished_at" in body["job"]
    assert body["event_id"] == ids.event_id(job_id, 2)
    assert row(db, job_id) == ("cancelled", 2, 0, 5, False)
    (cancelled,) = envelopes(drain(queues, EVENTS_QUEUE))
    assert cancelled.job_cancelled.reason == "changed my mind"
    assert cancelled.event_id == body["event_id"]
    # Cancelling again is a no-op.
    again = stub.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=10)
    assert (again.job.status, again.event_id) == (job_pb2.JOB_STATUS_CANCELLED, "")

    retried = stub.RetryJob(gateway_pb2.RetryJobRequest(job_id=job_id), timeout=10)
    assert retried.job.status == job_pb2.JOB_STATUS_PENDING
    assert retried.event_id == ids.event_id(job_id, 3)
    assert row(db, job_id) == ("pending", 3, 0, 5, False)  # the unused budget is kept
    (work,) = drain(queues, topology.WORK_QUEUE)
    assert_work_message(work, job_id, attempt=1, priority=0)
    (retry_event,) = envelopes(drain(queues, EVENTS_QUEUE))
    assert retry_event.WhichOneof("payload") == "job_retry_scheduled"
    assert retry_event.job_retry_scheduled.delay.ToTimedelta().total_seconds() == 0
    status, body, _ = http(gateway, "POST", f"/jobs/{job_id}/retry")
    assert status == 409 and "pending" in body["message"]


def test_cancel_running_requests_it_and_broadcasts(
    gateway: RunningGateway,
    stub: gateway_pb2_grpc.JobServiceStub,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    job_id = submit(gateway)
    db.execute("UPDATE jobs SET status = 'running', attempts = 1 WHERE id = %s", (job_id,))
    drain(queues, EVENTS_QUEUE)
    response = stub.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=10)
    assert response.job.cancel_requested and response.event_id == ""
    assert response.job.status == job_pb2.JOB_STATUS_RUNNING
    assert row(db, job_id) == ("running", 1, 1, 5, True)  # version unchanged: no transition
    ((_, broadcast),) = drain(queues, CONTROL_QUEUE)
    assert broadcast == job_id.encode()
    assert drain(queues, EVENTS_QUEUE) == []

    db.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (job_id,))
    with pytest.raises(grpc.RpcError) as error:
        stub.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=10)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in (error.value.details() or "")
    assert http(gateway, "POST", f"/jobs/{job_id}/cancel")[0] == 409
    assert http(gateway, "POST", f"/jobs/{job_id}/retry")[0] == 409


def test_retry_failed_requeues_every_failed_and_dead_lettered_job(
    gateway: RunningGateway, queues: BlockingChannel, db: psycopg.Connection[Any]
) -> None:
    db.execute("UPDATE jobs SET status = 'completed' WHERE status <> 'completed'")
    failed, dead = submit(gateway), submit(gateway)
    db.execute("UPDATE jobs SET status = 'failed', attempts = 1 WHERE id = %s", (failed,))
    db.execute("UPDATE jobs SET status = 'dead_lettered', attempts = 5 WHERE id = %s", (dead,))
    drain(queues, topology.WORK_QUEUE)
    drain(queues, EVENTS_QUEUE)
    status, body, _ = http(gateway, "POST", "/jobs:retry-failed")
    assert (status, body) == (200, {"retried": 2})
    assert row(db, failed) == ("pending", 2, 1, 5, False)  # keeps its 4 unused attempts
    assert row(db, dead) == ("pending", 2, 5, 8, False)  # exhausted: the default 3 again
    work = drain(queues, topology.WORK_QUEUE)
    attempts = {job_pb2.Job.FromString(b).id: p.headers["x-attempt"] for p, b in work}
    assert attempts == {failed: 2, dead: 6}
    retried = envelopes(drain(queues, EVENTS_QUEUE))
    assert sorted(e.job_id for e in retried) == sorted([failed, dead])
    assert {e.WhichOneof("payload") for e in retried} == {"job_retry_scheduled"}
    assert http(gateway, "POST", "/jobs:retry-failed")[1] == {"retried": 0}


def test_publisher_refuses_unroutable_and_stays_usable(rabbitmq: RabbitMQServer) -> None:
    publisher = gateway_publisher.Publisher(rabbitmq.info.amqp_url, timeout=2.0)
    message = gateway_publisher.Message
    try:
        lost = message(topology.JOBS_EXCHANGE, "no-such-key", b"x", "test")
        with pytest.raises(gateway_publisher.BrokerUnavailableError, match="unroutable"):
            publisher.publish([lost])
        batch = [
            message(topology.EVENTS_EXCHANGE, "job.test", b"%d" % i, "test") for i in range(300)
        ]
        began = time.monotonic()
        publisher.publish(batch)  # one confirm wait for the whole batch
        assert time.monotonic() - began < 5
    finally:
        publisher.close()


# -- tooling and the real process ----------------------------------------------------------------


def test_grpcurl_lists_describes_and_checks_health(gateway: RunningGateway) -> None:
    address = f"127.0.0.1:{gateway.grpc_port}"
    assert "observatory.gateway.v1.JobService" in grpcurl("-plaintext", address, "list")
    described = grpcurl("-plaintext", address, "describe", "observatory.gateway.v1.JobService")
    assert "rpc SubmitJobs" in described and "rpc CancelJob" in described
    health = grpcurl("-plaintext", address, "grpc.health.v1.Health/Check")
    assert json.loads(health) == {"status": "SERVING"}


def test_the_process_serves_and_stops_cleanly_on_sigterm(
    rabbitmq: RabbitMQServer, postgres: PostgresServer
) -> None:
    grpc_port, http_port = free_ports(2)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AMQP_URL": rabbitmq.info.amqp_url,
        "POSTGRES_DSN": postgres.info.dsn,
        "GATEWAY_GRPC_PORT": str(grpc_port),
        "GATEWAY_HTTP_PORT": str(http_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway.main"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_for(
            lambda: http_status(f"{url}/readyz"),
            what="the gateway process to be ready",
            until=lambda status: status == 200,
            timeout=30,
        )
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            response = gateway_pb2_grpc.JobServiceStub(channel).SubmitJob(
                gateway_pb2.SubmitJobRequest(spec=job_pb2.JobSpec(type="noop")), timeout=10
            )
        assert response.status == job_pb2.JOB_STATUS_PENDING
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"still running 20 s after SIGTERM; its log:\n{stderr[-4000:]}")
        assert process.returncode == 0, stderr
        logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(entry["message"] == "gateway stopped" for entry in logged)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
