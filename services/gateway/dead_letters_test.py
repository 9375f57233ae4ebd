"""Dead-letter replay without servers: what counts as a job message, the reason reported for a
kept one, the gRPC and HTTP shapes of the result, and a dead broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pika
import pytest
from fastapi.testclient import TestClient
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2

from services.common import grpc_server
from services.common.wire import JOB_MESSAGE_TYPE
from services.gateway import grpc_api
from services.gateway.config import Limits
from services.gateway.dead_letters import (
    DeadLetters,
    Kept,
    ReplayResult,
    dead_letter_reason,
    job_of,
)
from services.gateway.fake_jobs import FakeJobs
from services.gateway.http_api import build_app
from services.gateway.service import UnavailableError
from tools.testing.servers.net import free_ports

LIMITS = Limits()
JOB_ID = str(uuid.uuid4())


def job_properties(**headers: object) -> pika.BasicProperties:
    return pika.BasicProperties(type=JOB_MESSAGE_TYPE, headers=headers or None)


def test_a_work_message_names_its_job() -> None:
    body = job_pb2.Job(id=JOB_ID, type="fail").SerializeToString()
    assert job_of(job_properties(**{"x-contract-version": "1"}), body) == (JOB_ID, "")


@pytest.mark.parametrize(
    ("properties", "body", "why"),
    [
        (pika.BasicProperties(type="text/plain"), b"hi", "type 'text/plain'"),
        (pika.BasicProperties(), b"", "type 'unset'"),
        (job_properties(), b"\xff\xff\xff", "undecodable body"),
        (job_properties(), job_pb2.Job(id="x").SerializeToString(), "is not a UUID"),
        (
            job_properties(**{"x-contract-version": "2"}),
            job_pb2.Job(id=JOB_ID).SerializeToString(),
            "contract version '2'",
        ),
    ],
)
def test_anything_else_is_not_a_job_and_says_why(
    properties: pika.BasicProperties, body: bytes, why: str
) -> None:
    job_id, reason = job_of(properties, body)
    assert job_id is None
    assert reason.startswith("not a job message") and why in reason


def test_dead_letter_reason_prefers_the_processors_header_then_rabbitmqs() -> None:
    assert dead_letter_reason({"x-reason": b"max attempts (3) exhausted"}) == (
        "max attempts (3) exhausted"
    )
    death = {"x-death": [{"reason": b"rejected", "queue": b"jobs.work", "count": 1}]}
    assert dead_letter_reason(death) == "rejected from jobs.work"
    assert dead_letter_reason({}) == ""


def test_a_dead_broker_is_unavailable_quickly() -> None:
    (port,) = free_ports(1)
    dead_letters = DeadLetters(f"amqp://guest:guest@127.0.0.1:{port}/%2F", FakeRequeue(), timeout=2)
    with pytest.raises(UnavailableError, match="broker unreachable"):
        dead_letters.replay()


class FakeRequeue:
    def __call__(self, job_id: str) -> object | None:
        return None


class FakeReplay:
    def __init__(self) -> None:
        self.result = ReplayResult(
            replayed_job_ids=[JOB_ID],
            stale=2,
            kept=[Kept("not a job message: undecodable body", "rejected from jobs.work")],
        )
        self.fail_with: Exception | None = None

    def replay(self) -> ReplayResult:
        if self.fail_with is not None:
            raise self.fail_with
        return self.result


@pytest.fixture
def replay() -> FakeReplay:
    return FakeReplay()


class CountingJobs(FakeJobs):
    retried = 0

    def retry_failed(self) -> int:
        return self.retried


@pytest.fixture
def jobs() -> CountingJobs:
    return CountingJobs()


@pytest.fixture
def stub(replay: FakeReplay, jobs: CountingJobs) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    servicer = grpc_api.JobServiceServicer(jobs, LIMITS, replay)
    server = grpc_server.serve(
        grpc_api.registrar(servicer), [grpc_api.SERVICE_NAME], host="127.0.0.1", port=0
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield gateway_pb2_grpc.JobServiceStub(channel)
    finally:
        channel.close()
        server.stop(0)


def test_grpc_reports_counts_ids_and_reasons(stub: gateway_pb2_grpc.JobServiceStub) -> None:
    response = stub.ReplayDeadLetters(gateway_pb2.ReplayDeadLettersRequest(), timeout=5)
    assert (response.replayed, response.stale, response.kept) == (1, 2, 1)
    assert list(response.replayed_job_ids) == [JOB_ID]
    assert response.kept_messages[0].dead_letter_reason == "rejected from jobs.work"


def test_grpc_broker_down_is_unavailable(
    stub: gateway_pb2_grpc.JobServiceStub, replay: FakeReplay
) -> None:
    replay.fail_with = UnavailableError("broker unreachable")
    with pytest.raises(grpc.RpcError) as error:
        stub.ReplayDeadLetters(gateway_pb2.ReplayDeadLettersRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined,unused-ignore]


def test_http_mirror_has_every_field_even_when_zero(replay: FakeReplay) -> None:
    replay.result = ReplayResult()
    client = TestClient(build_app(FakeJobs(), LIMITS, {"fake": lambda: True}, replay))
    response = client.post("/jobs:replay-dead-letters")
    assert response.status_code == 200
    assert response.json() == {
        "replayed": 0,
        "stale": 0,
        "kept": 0,
        "replayed_job_ids": [],
        "kept_messages": [],
    }
    replay.fail_with = UnavailableError("broker unreachable")
    assert client.post("/jobs:replay-dead-letters").status_code == 503


def test_retry_failed_jobs_over_grpc_returns_the_count(
    stub: gateway_pb2_grpc.JobServiceStub, jobs: CountingJobs
) -> None:
    jobs.retried = 4
    response = stub.RetryFailedJobs(gateway_pb2.RetryFailedJobsRequest(), timeout=5)
    assert response.retried == 4
