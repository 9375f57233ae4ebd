"""GatewayClient and ReadModelClient against in-process gRPC servers: the gateway's real
servicer over an in-memory JobService (real validation messages), and a fake read model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from interfaces.tui.gateway_client import (
    ActionError,
    BulkCounts,
    GatewayClient,
    ReadModelClient,
)
from services.common import grpc_server
from services.gateway import grpc_api
from services.gateway.config import Limits
from services.gateway.dead_letters import Kept, ReplayResult
from services.gateway.fake_jobs import FakeJobs
from services.gateway.service import UnavailableError
from tools.testing.servers.net import free_ports


class Jobs(FakeJobs):
    failed_jobs = 0

    def retry_failed(self) -> int:
        self._maybe_fail()
        return self.failed_jobs


class Replay:
    def __init__(self) -> None:
        self.result = ReplayResult()

    def replay(self) -> ReplayResult:
        return self.result


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture
def replay() -> Replay:
    return Replay()


@pytest.fixture
def gateway(jobs: Jobs, replay: Replay) -> Iterator[GatewayClient]:
    servicer = grpc_api.JobServiceServicer(jobs, Limits(), replay)
    server = grpc_server.serve(
        grpc_api.registrar(servicer), [grpc_api.SERVICE_NAME], host="127.0.0.1", port=0
    )
    client = GatewayClient(f"127.0.0.1:{server.port}", timeout=5)
    yield client
    client.close()
    server.stop(0)


def test_submit_sends_count_jobs_in_batches_and_returns_their_ids(
    gateway: GatewayClient, jobs: Jobs
) -> None:
    ids = gateway.submit("sleep", {"seconds": 0.5}, count=1201, priority=7)

    assert len(ids) == len(set(ids)) == 1201
    assert set(ids) == set(jobs.jobs)
    assert len(jobs.correlation_ids) == 3  # 500 + 500 + 201
    job = jobs.jobs[ids[0]]
    assert (job.type, job.priority, dict(job.payload)) == ("sleep", 7, {"seconds": 0.5})


def test_invalid_argument_becomes_the_servers_field_message(gateway: GatewayClient) -> None:
    with pytest.raises(ActionError) as error:
        gateway.submit("sleep", {}, count=1)
    assert str(error.value) == "specs[0].payload.seconds: required"


def test_count_out_of_range_is_refused_before_sending(gateway: GatewayClient, jobs: Jobs) -> None:
    with pytest.raises(ActionError, match=r"count: must be 1\.\.10000"):
        gateway.submit("noop", {}, count=10_001)
    assert jobs.jobs == {}


def test_cancel_and_retry_return_the_job_and_conflicts_read_plainly(
    gateway: GatewayClient,
) -> None:
    (job_id,) = gateway.submit("noop", {})
    assert gateway.cancel(job_id).status == job_pb2.JOB_STATUS_CANCELLED
    assert gateway.retry(job_id).status == job_pb2.JOB_STATUS_PENDING
    with pytest.raises(ActionError, match=f"job {job_id} is JOB_STATUS_PENDING"):
        gateway.retry(job_id)
    with pytest.raises(ActionError, match="not found"):
        gateway.cancel(str(uuid.uuid4()))


def test_bulk_actions(gateway: GatewayClient, jobs: Jobs, replay: Replay) -> None:
    jobs.failed_jobs = 5
    assert gateway.retry_failed() == 5
    job_id = str(uuid.uuid4())
    replay.result = ReplayResult([job_id], stale=1, kept=[Kept("not a job message: x", "why")])
    outcome = gateway.replay_dead_letters()
    assert outcome.replayed_job_ids == (job_id,)
    assert (outcome.stale, len(outcome.kept)) == (1, 1)
    assert outcome.summary() == (
        "replayed 1 dead-lettered job(s); 1 stale message(s) removed; 1 kept: not a job message: x"
    )


def test_backend_down_behind_the_gateway_is_unavailable(gateway: GatewayClient, jobs: Jobs) -> None:
    jobs.fail_with = UnavailableError("broker unreachable")
    with pytest.raises(ActionError, match=r"^gateway unavailable: a backing service is down"):
        gateway.retry_failed()


def test_no_gateway_listening_is_unavailable_not_a_hang() -> None:
    (port,) = free_ports(1)
    client = GatewayClient(f"127.0.0.1:{port}", timeout=3)
    try:
        with pytest.raises(ActionError, match=r"^gateway unavailable: "):
            client.submit("noop", {})
    finally:
        client.close()


class FakeReadModel(read_model_pb2_grpc.ReadModelServiceServicer):
    """The three read-model calls the actions use; the others answer UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.job = job_pb2.Job(id=str(uuid.uuid4()), type="fail")

    def GetJobDetail(  # noqa: N802
        self, request: rm.GetJobDetailRequest, context: grpc.ServicerContext
    ) -> rm.GetJobDetailResponse:
        if request.job_id != self.job.id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        return rm.GetJobDetailResponse(job=self.job, attempts=[job_pb2.JobAttempt(number=1)])

    def GetStats(  # noqa: N802
        self, request: rm.GetStatsRequest, context: grpc.ServicerContext
    ) -> rm.GetStatsResponse:
        counts = [
            rm.StatusCount(status=job_pb2.JOB_STATUS_FAILED, count=3),
            rm.StatusCount(status=job_pb2.JOB_STATUS_DEAD_LETTERED, count=2),
            rm.StatusCount(status=job_pb2.JOB_STATUS_COMPLETED, count=40),
        ]
        return rm.GetStatsResponse(stats=rm.Stats(by_status=counts))

    def ListQueues(  # noqa: N802
        self, request: rm.ListQueuesRequest, context: grpc.ServicerContext
    ) -> rm.ListQueuesResponse:
        return rm.ListQueuesResponse(
            queues=[
                rm.Queue(name="jobs.dead", depth=4, unacknowledged=1),
                rm.Queue(name="jobs.work"),
            ]
        )


@pytest.fixture
def read_model() -> Iterator[tuple[ReadModelClient, FakeReadModel]]:
    # The stubs mark every RPC abstract; the generated base answers UNIMPLEMENTED for the rest.
    fake = FakeReadModel()  # type: ignore[abstract]

    def register(server: grpc.Server) -> None:
        read_model_pb2_grpc.add_ReadModelServiceServicer_to_server(fake, server)

    name = rm.DESCRIPTOR.services_by_name["ReadModelService"].full_name
    server = grpc_server.serve(register, [name], host="127.0.0.1", port=0)
    client = ReadModelClient(f"127.0.0.1:{server.port}", timeout=5)
    yield client, fake
    client.close()
    server.stop(0)


def test_job_detail_and_bulk_counts(read_model: tuple[ReadModelClient, FakeReadModel]) -> None:
    client, fake = read_model
    detail = client.job_detail(fake.job.id)
    assert detail.job.id == fake.job.id and len(detail.attempts) == 1
    assert client.bulk_counts() == BulkCounts(failed=3, dead_lettered=2, dead_letter_messages=5)
    with pytest.raises(ActionError, match="not found"):
        client.job_detail(str(uuid.uuid4()))
