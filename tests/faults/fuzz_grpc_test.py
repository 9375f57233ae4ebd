"""The gateway's gRPC API under random and boundary inputs (hypothesis): every call answers in
time with OK or a client error code, never INTERNAL/UNKNOWN, and every job it accepts ends in
exactly one terminal state, consistently in every store."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2

from tests.faults.consistency import check_consistency
from tests.faults.fuzz_support import cancel_unfinished
from tests.faults.stack import Stack

pytestmark = [pytest.mark.integration]

CALL_DEADLINE_S = 15.0
CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no example database written into the tree
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)

INT32 = st.one_of(
    st.sampled_from([-(2**31), -1, 0, 1, 9, 10, 100, 101, 2**31 - 1]),
    st.integers(-(2**31), 2**31 - 1),
)
# Empty, ordinary, unicode (astral, combining, NUL), and around the 256-character key limit.
TEXT = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.sampled_from(["noop", "echo", "sleep", "fail", "cpu", "é", "\x00", "𝄞" * 3, "a\u0301"]),
    st.builds(
        lambda n, c: c * n, st.sampled_from([255, 256, 257, 4096, 70_000]), st.sampled_from("a€𝄞")
    ),
)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
    TEXT,
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
PAYLOAD = st.one_of(
    st.dictionaries(st.text(max_size=12), JSON, max_size=5),
    st.fixed_dictionaries(
        {"seconds": st.one_of(st.floats(-1, 0.05), st.sampled_from([3600, 3601, 1e300]))}
    ),
    st.fixed_dictionaries({"until_attempt": st.integers(-1, 3), "message": TEXT}),
    st.fixed_dictionaries({"rounds": st.one_of(st.integers(-1, 1000), st.just(10**9))}),
)
DURATION = st.builds(
    Duration,
    seconds=st.one_of(
        st.sampled_from([-1, 0, 1, 86_400, 86_401, 315_576_000_000]), st.integers(-(2**40), 2**40)
    ),
    nanos=st.sampled_from([0, 1, 999_999_999, -1]),
)


@st.composite
def job_specs(draw: st.DrawFn) -> job_pb2.JobSpec:
    spec = job_pb2.JobSpec(
        type=draw(st.one_of(st.sampled_from(["noop", "echo", "sleep", "fail", "cpu"]), TEXT)),
        priority=draw(INT32),
        idempotency_key=draw(st.one_of(st.just(""), TEXT)),
        max_attempts=draw(INT32),
    )
    if draw(st.booleans()):
        spec.timeout.CopyFrom(draw(DURATION))
    with contextlib.suppress(ValueError, TypeError):  # not representable as a Struct: empty
        spec.payload.update(draw(PAYLOAD))
    return spec


@st.composite
def runnable_specs(draw: st.DrawFn) -> job_pb2.JobSpec:
    """Specs the gateway should accept (random ones almost never are), at their boundaries."""
    spec = job_pb2.JobSpec(
        type=draw(st.sampled_from(["noop", "echo"])),
        priority=draw(st.integers(0, 9)),
        idempotency_key=draw(st.one_of(st.just(""), st.text(max_size=256))),
        max_attempts=draw(st.sampled_from([0, 1, 3, 100])),  # 0: the default
    )
    spec.payload.update(draw(st.dictionaries(st.text(max_size=12), JSON_LEAF, max_size=3)))
    return spec


SPECS = st.one_of(job_specs(), runnable_specs())


class Calls:
    """The stub, plus every job id the gateway accepted, every status it answered, and every
    answer that broke the contract (collected, so one run shows every kind of violation)."""

    def __init__(self, stub: gateway_pb2_grpc.JobServiceStub) -> None:
        self.stub = stub
        self.accepted: set[str] = set()
        self.codes: Counter[str] = Counter()
        self.violations: dict[str, str] = {}  # "<method> <code>: <details>" -> shortest request

    def call(self, method: str, request: Any) -> Any:
        rpc: Callable[..., Any] = getattr(self.stub, method)
        began = time.monotonic()
        try:
            response = rpc(request, timeout=CALL_DEADLINE_S)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            response, code, details = None, error.code(), str(error.details())
        elapsed = time.monotonic() - began
        self.codes[f"{method} {code.name}"] += 1
        if code not in CLIENT_ERRORS | {grpc.StatusCode.OK} or elapsed >= CALL_DEADLINE_S:
            shown = repr(str(request))[:300]
            kind = f"{method} {code.name} after {elapsed:.0f}s: {details}"
            if kind not in self.violations or len(shown) < len(self.violations[kind]):
                self.violations[kind] = shown
        return response

    def assert_no_violation(self, method: str) -> None:
        found = {k: v for k, v in self.violations.items() if k.startswith(f"{method} ")}
        assert not found, f"{method} broke its contract:\n" + "\n".join(
            f"  {kind}\n    e.g. {request}" for kind, request in sorted(found.items())
        )

    def job_ids(self) -> st.SearchStrategy[str]:
        """Random text, unknown UUIDs, and the ids of jobs accepted so far."""
        known = sorted(self.accepted)
        choices = [TEXT, st.just(str(uuid.uuid4())), st.just(str(uuid.UUID(int=0)))]
        if known:
            choices.append(st.sampled_from(known))
        return st.one_of(*choices)


@pytest.fixture(scope="module")
def calls(stack: Stack) -> Iterator[Calls]:
    with grpc.insecure_channel(
        stack.gateway.info.grpc_target,
        options=[("grpc.max_send_message_length", 16 * 1024 * 1024)],
    ) as channel:
        yield Calls(gateway_pb2_grpc.JobServiceStub(channel))


def test_submit_job(calls: Calls) -> None:
    @FUZZ
    @given(spec=SPECS, correlation_id=TEXT)
    def submit(spec: job_pb2.JobSpec, correlation_id: str) -> None:
        request = gateway_pb2.SubmitJobRequest(spec=spec, correlation_id=correlation_id)
        response = calls.call("SubmitJob", request)
        if response is not None:
            assert uuid.UUID(response.job_id)
            calls.accepted.add(response.job_id)

    submit()
    calls.assert_no_violation("SubmitJob")


def test_submit_jobs(calls: Calls) -> None:
    @FUZZ
    @given(
        specs=st.one_of(
            st.lists(SPECS, max_size=5),
            # Around the 500-spec limit with the smallest valid spec.
            st.sampled_from([500, 501]).map(lambda n: [job_pb2.JobSpec(type="noop")] * n),
        ),
        correlation_id=TEXT,
    )
    def submit(specs: list[job_pb2.JobSpec], correlation_id: str) -> None:
        request = gateway_pb2.SubmitJobsRequest(specs=specs, correlation_id=correlation_id)
        response = calls.call("SubmitJobs", request)
        if response is not None:
            assert len(response.results) == len(specs)
            calls.accepted.update(result.job_id for result in response.results)

    submit()
    calls.assert_no_violation("SubmitJobs")


def test_cancel_retry_get(calls: Calls) -> None:
    @FUZZ
    @given(data=st.data(), method=st.sampled_from(["CancelJob", "RetryJob", "GetJob"]))
    def act(data: st.DataObject, method: str) -> None:
        job_id = data.draw(calls.job_ids())
        if method == "CancelJob":
            request: Any = gateway_pb2.CancelJobRequest(job_id=job_id, reason=data.draw(TEXT))
        elif method == "RetryJob":
            request = gateway_pb2.RetryJobRequest(job_id=job_id)
        else:
            request = gateway_pb2.GetJobRequest(job_id=job_id)
        response = calls.call(method, request)
        if response is not None and method == "GetJob":
            assert response.job.id == job_id.lower() or uuid.UUID(response.job.id) == uuid.UUID(
                job_id
            )

    act()
    for method in ("CancelJob", "RetryJob", "GetJob"):
        calls.assert_no_violation(method)


def test_every_accepted_job_ends_once_everywhere(stack: Stack, calls: Calls) -> None:
    print(f"answers: {dict(sorted(calls.codes.items()))}")
    print(f"violations: {calls.violations}")
    assert calls.accepted, "the fuzzer never got a job accepted: the strategies are off"
    cancelled = cancel_unfinished(stack, calls.accepted)
    print(f"{len(calls.accepted)} jobs accepted while fuzzing; {cancelled} cancelled to end them")
    check_consistency(stack, calls.accepted, timeout=180)
