"""The contracts compile with grpc_tools and the generated Python modules behave as documented.

Imports the modules by their build names (observatory.<area>.v1.<file>_pb2): under Bazel they come
from the py_proto_grpc_library targets, under plain pytest conftest.py generates them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor, ServiceDescriptor
from grpc_tools import protoc
from observatory.events.v1 import event_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2, read_model_pb2_grpc

from tools.proto import buf_tool


@pytest.mark.parametrize("rel", buf_tool.proto_files())
def test_protoc_generates_every_file(
    rel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same invocation as py_proto_grpc_library: run from the workspace root, `-Iproto`, one
    # file at a time, named by its path under the workspace.
    monkeypatch.chdir(buf_tool.proto_dir().parent)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        "-Iproto",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"proto/{rel}",
        f"-I{well_known}",
    ]
    assert protoc.main(args) == 0, f"protoc failed on {rel} (its errors are in the output above)"
    stem = tmp_path / rel.removesuffix(".proto")
    for suffix in ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"):
        assert Path(f"{stem}{suffix}").is_file(), f"{stem}{suffix} not generated"


def _sample_job() -> job_pb2.Job:
    payload = struct_pb2.Struct()
    payload.update(
        {
            "to": "ops@example.com",
            "attempt_budget": 3,
            "urgent": True,
            "tags": ["a", "b"],
            "customer": {"id": "c-42", "tier": None},
        }
    )
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = job_pb2.Job(
        id="0f8c1a9e-5d0b-4b7e-9f58-8d1a6c3e2b10",
        type="email.send",
        payload=payload,
        priority=7,
        status=job_pb2.JOB_STATUS_RETRY_SCHEDULED,
        attempts=2,
        max_attempts=5,
        idempotency_key="order-1234",
        correlation_id="trace-1",
        last_error="smtp: 421 try again later",
        cancel_requested=False,
        worker="processor-1/3f2a",
    )
    job.timeout.FromTimedelta(timedelta(seconds=30))
    job.created_at.FromDatetime(created)
    job.updated_at.FromDatetime(created + timedelta(seconds=9))
    job.started_at.FromDatetime(created + timedelta(seconds=1))
    job.next_attempt_at.FromDatetime(created + timedelta(seconds=13))
    return job


def test_job_round_trips_through_the_wire_format() -> None:
    job = _sample_job()
    decoded = job_pb2.Job.FromString(job.SerializeToString())
    assert decoded == job
    assert json_format.MessageToDict(decoded.payload) == {
        "to": "ops@example.com",
        "attempt_budget": 3.0,  # Struct numbers are doubles.
        "urgent": True,
        "tags": ["a", "b"],
        "customer": {"id": "c-42", "tier": None},
    }
    assert decoded.timeout.ToTimedelta() == timedelta(seconds=30)
    assert not decoded.HasField("finished_at")


def test_job_round_trips_through_json() -> None:
    # The gateway's HTTP side speaks proto3 JSON: lowerCamelCase names, enum names, RFC 3339 times.
    job = _sample_job()
    as_json = json_format.MessageToJson(job)
    fields = json.loads(as_json)
    assert fields["idempotencyKey"] == "order-1234"
    assert fields["status"] == "JOB_STATUS_RETRY_SCHEDULED"
    assert fields["timeout"] == "30s"
    assert fields["createdAt"] == "2026-01-02T03:04:05Z"
    assert json_format.Parse(as_json, job_pb2.Job()) == job


def _enum_names(enum: EnumDescriptor) -> list[tuple[str, int]]:
    return [(v.name, v.number) for v in enum.values]


def test_job_status_values() -> None:
    assert _enum_names(job_pb2.JobStatus.DESCRIPTOR) == [
        ("JOB_STATUS_UNSPECIFIED", 0),
        ("JOB_STATUS_PENDING", 1),
        ("JOB_STATUS_RUNNING", 2),
        ("JOB_STATUS_RETRY_SCHEDULED", 3),
        ("JOB_STATUS_COMPLETED", 4),
        ("JOB_STATUS_FAILED", 5),
        ("JOB_STATUS_CANCELLED", 6),
        ("JOB_STATUS_DEAD_LETTERED", 7),
    ]
    assert job_pb2.JobStatus.Name(job_pb2.JOB_STATUS_DEAD_LETTERED) == "JOB_STATUS_DEAD_LETTERED"


def test_event_types_match_payload_cases() -> None:
    # Every EventType (except UNSPECIFIED) names exactly one case of the payload oneof.
    oneof = event_pb2.EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"]
    cases = {f.name for f in oneof.fields}
    types = {
        name.removeprefix("EVENT_TYPE_").lower()
        for name, number in _enum_names(event_pb2.EventType.DESCRIPTOR)
        if number != 0
    }
    assert types == cases
    assert len(cases) == 7


def test_event_envelope_round_trips_with_typed_payload() -> None:
    occurred = timestamp_pb2.Timestamp(seconds=1_767_323_045)
    envelope = event_pb2.EventEnvelope(
        event_id="e-1",
        event_type=event_pb2.EVENT_TYPE_JOB_RETRY_SCHEDULED,
        occurred_at=occurred,
        job_id="j-1",
        correlation_id="trace-1",
        idempotency_key="j-1/EVENT_TYPE_JOB_RETRY_SCHEDULED/2",
        producer=event_pb2.Producer(service="processor", instance_id="p-1", version="1.0.0"),
        contract_version="1.0",
        job_retry_scheduled=event_pb2.JobRetryScheduled(
            attempt=2,
            delay=duration_pb2.Duration(seconds=4),
            next_attempt_at=timestamp_pb2.Timestamp(seconds=occurred.seconds + 4),
            error="timeout",
            worker="p-1",
        ),
    )
    decoded = event_pb2.EventEnvelope.FromString(envelope.SerializeToString())
    assert decoded == envelope
    assert decoded.WhichOneof("payload") == "job_retry_scheduled"
    assert decoded.job_retry_scheduled.delay.ToTimedelta() == timedelta(seconds=4)


def test_watch_response_carries_one_update_kind() -> None:
    response = read_model_pb2.WatchResponse(
        stats=read_model_pb2.Stats(
            total_jobs=3,
            by_status=[
                read_model_pb2.StatusCount(status=job_pb2.JOB_STATUS_COMPLETED, count=3),
            ],
        )
    )
    assert response.WhichOneof("update") == "stats"
    response.job_changed.job.id = "j-1"  # Setting another case clears the first.
    assert response.WhichOneof("update") == "job_changed"
    assert not response.HasField("stats")


def _methods(service: ServiceDescriptor) -> dict[str, tuple[str, str, bool, bool]]:
    return {
        m.name: (
            m.input_type.full_name,
            m.output_type.full_name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in service.methods
    }


def test_job_service_rpcs() -> None:
    service = gateway_pb2.DESCRIPTOR.services_by_name["JobService"]
    assert service.full_name == "observatory.gateway.v1.JobService"
    pkg = "observatory.gateway.v1"
    assert _methods(service) == {
        name: (f"{pkg}.{name}Request", f"{pkg}.{name}Response", False, False)
        for name in (
            "SubmitJob",
            "SubmitJobs",
            "CancelJob",
            "RetryJob",
            "GetJob",
            "RetryFailedJobs",
            "ReplayDeadLetters",
        )
    }
    # The grpc plugin's output exists for clients and servers.
    assert hasattr(gateway_pb2_grpc, "JobServiceStub")
    assert hasattr(gateway_pb2_grpc, "add_JobServiceServicer_to_server")


def test_read_model_service_rpcs() -> None:
    service = read_model_pb2.DESCRIPTOR.services_by_name["ReadModelService"]
    assert service.full_name == "observatory.readmodel.v1.ReadModelService"
    pkg = "observatory.readmodel.v1"
    unary = ("GetStats", "ListJobs", "GetJobDetail", "ListEvents", "ListQueues", "ListAlerts")
    expected = {
        name: (f"{pkg}.{name}Request", f"{pkg}.{name}Response", False, False) for name in unary
    }
    expected["Watch"] = (f"{pkg}.WatchRequest", f"{pkg}.WatchResponse", False, True)
    assert _methods(service) == expected
    assert hasattr(read_model_pb2_grpc, "ReadModelServiceStub")
    assert hasattr(read_model_pb2_grpc, "add_ReadModelServiceServicer_to_server")


def test_submit_response_reports_duplicates() -> None:
    response = gateway_pb2.SubmitJobResponse(
        job_id="j-1", event_id="e-1", status=job_pb2.JOB_STATUS_PENDING, duplicate=True
    )
    assert gateway_pb2.SubmitJobResponse.FromString(response.SerializeToString()).duplicate
