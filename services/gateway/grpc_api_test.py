"""The gRPC JobService over a fake JobService: codes, field names, correlation metadata."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2

from services.common import grpc_server
from services.gateway import grpc_api
from services.gateway.config import Limits
from services.gateway.fake_jobs import FakeJobs
from services.gateway.service import UnavailableError

LIMITS = Limits(max_payload_bytes=1024)


@pytest.fixture
def jobs() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def stub(jobs: FakeJobs) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    server = grpc_server.serve(
        grpc_api.registrar(grpc_api.JobServiceServicer(jobs, LIMITS)),
        [grpc_api.SERVICE_NAME],
        host="127.0.0.1",
        port=0,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield gateway_pb2_grpc.JobServiceStub(channel)
    finally:
        channel.close()
        server.stop(0)


def spec(**fields: object) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(type="noop", **fields)  # type: ignore[arg-type,unused-ignore]


def code_and_details(call: object) -> tuple[grpc.StatusCode, str]:
    assert isinstance(call, grpc.RpcError)
    return call.code(), call.details() or ""  # type: ignore[attr-defined,unused-ignore]


def test_submit_returns_the_new_job_and_the_correlation_id(
    stub: gateway_pb2_grpc.JobServiceStub, jobs: FakeJobs
) -> None:
    response, call = stub.SubmitJob.with_call(
        gateway_pb2.SubmitJobRequest(spec=spec(), correlation_id="trace-7"), timeout=5
    )
    assert uuid.UUID(response.job_id) and uuid.UUID(response.event_id)
    assert (response.status, response.duplicate) == (job_pb2.JOB_STATUS_PENDING, False)
    assert ("x-correlation-id", "trace-7") in call.trailing_metadata()
    assert jobs.correlation_ids == ["trace-7"]
    stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec()), timeout=5)
    assert uuid.UUID(jobs.correlation_ids[-1])  # generated when absent


def test_a_non_ascii_correlation_id_is_refused_before_anything_is_stored(
    stub: gateway_pb2_grpc.JobServiceStub, jobs: FakeJobs
) -> None:
    before = list(jobs.correlation_ids)
    with pytest.raises(grpc.RpcError) as single:
        stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec(), correlation_id="á"), timeout=5)
    with pytest.raises(grpc.RpcError) as batch:
        stub.SubmitJobs(
            gateway_pb2.SubmitJobsRequest(specs=[spec(), spec()], correlation_id="á"), timeout=5
        )
    for refused in (single, batch):
        code, details = code_and_details(refused.value)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert "correlation_id" in details
    assert jobs.correlation_ids == before  # nothing was submitted


def test_duplicate_submission_returns_the_same_job(stub: gateway_pb2_grpc.JobServiceStub) -> None:
    request = gateway_pb2.SubmitJobRequest(spec=spec(idempotency_key="k"))
    first, second = stub.SubmitJob(request, timeout=5), stub.SubmitJob(request, timeout=5)
    assert second.job_id == first.job_id
    assert second.duplicate and not first.duplicate


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (spec(priority=10), "spec.priority"),
        (spec(max_attempts=101), "spec.max_attempts"),
        (job_pb2.JobSpec(type="unknown.type"), "spec.type"),
        (job_pb2.JobSpec(), "spec.type"),
        (job_pb2.JobSpec(type="sleep"), "spec.payload.seconds"),
    ],
)
def test_invalid_specs_are_invalid_argument_naming_the_field(
    stub: gateway_pb2_grpc.JobServiceStub, bad: job_pb2.JobSpec, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=bad), timeout=5)
    code, details = code_and_details(error.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details


def test_bad_timeout_and_oversized_payload_are_named(
    stub: gateway_pb2_grpc.JobServiceStub,
) -> None:
    bad = spec()
    bad.timeout.FromTimedelta(timedelta(seconds=0, microseconds=-1))
    big = job_pb2.JobSpec(type="echo")
    big.payload.update({"message": "x" * 2000})
    for request_spec, field in ((bad, "spec.timeout"), (big, "spec.payload")):
        with pytest.raises(grpc.RpcError) as error:
            stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=request_spec), timeout=5)
        assert code_and_details(error.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
        assert field in code_and_details(error.value)[1]


def test_batch_names_the_bad_spec_and_submits_nothing(
    stub: gateway_pb2_grpc.JobServiceStub, jobs: FakeJobs
) -> None:
    specs = [spec() for _ in range(5)]
    specs[3].priority = 12
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJobs(gateway_pb2.SubmitJobsRequest(specs=specs), timeout=5)
    assert code_and_details(error.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "specs[3].priority" in code_and_details(error.value)[1]
    assert jobs.jobs == {}
    specs[3].priority = 1
    response = stub.SubmitJobs(gateway_pb2.SubmitJobsRequest(specs=specs), timeout=5)
    assert len({r.job_id for r in response.results}) == 5


def test_job_id_errors_and_status_conflicts(stub: gateway_pb2_grpc.JobServiceStub) -> None:
    job_id = stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec()), timeout=5).job_id
    assert stub.GetJob(gateway_pb2.GetJobRequest(job_id=job_id), timeout=5).job.id == job_id
    cancelled = stub.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=5)
    assert cancelled.job.status == job_pb2.JOB_STATUS_CANCELLED and cancelled.event_id
    retried = stub.RetryJob(gateway_pb2.RetryJobRequest(job_id=job_id), timeout=5)
    assert retried.job.status == job_pb2.JOB_STATUS_PENDING
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: stub.GetJob(gateway_pb2.GetJobRequest(job_id=str(uuid.uuid4()))), "NOT_FOUND"),
        (lambda: stub.GetJob(gateway_pb2.GetJobRequest(job_id="nope")), "INVALID_ARGUMENT"),
        (lambda: stub.RetryJob(gateway_pb2.RetryJobRequest(job_id=job_id)), "FAILED_PRECONDITION"),
    ]
    for call, expected in cases:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert code_and_details(error.value)[0].name == expected


def test_backend_failure_is_unavailable(
    stub: gateway_pb2_grpc.JobServiceStub, jobs: FakeJobs
) -> None:
    jobs.fail_with = UnavailableError("broker unreachable")
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec()), timeout=5)
    assert code_and_details(error.value)[0] == grpc.StatusCode.UNAVAILABLE
