"""The TUI's gRPC clients for actions: the gateway (write path) and job detail from the read model.

Every failure becomes `ActionError` with one short line a user can act on: the gateway's own
message for a bad request, "gateway unavailable: ..." when it cannot be reached. Calls have a
deadline, so a dead server never hangs the screen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from services.common import topology

CALL_TIMEOUT_S = 10.0
BULK_TIMEOUT_S = 60.0  # retry-all and replay touch many jobs
SUBMIT_BATCH = 500  # the gateway's SubmitJobs limit per call
MAX_SUBMIT_COUNT = 10_000


class ActionError(Exception):
    """An action failed; str() is the one line to show."""


@dataclass(frozen=True)
class Kept:
    reason: str
    dead_letter_reason: str
    job_id: str


@dataclass(frozen=True)
class ReplayOutcome:
    replayed_job_ids: tuple[str, ...]
    stale: int
    kept: tuple[Kept, ...]

    def summary(self) -> str:
        """One line, e.g. "replayed 2 dead-lettered jobs; 1 stale removed; 1 kept (poison...)"."""
        parts = [f"replayed {len(self.replayed_job_ids)} dead-lettered job(s)"]
        if self.stale:
            parts.append(f"{self.stale} stale message(s) removed")
        if self.kept:
            parts.append(f"{len(self.kept)} kept: {self.kept[0].reason}")
        return "; ".join(parts)


def describe(error: grpc.RpcError, server: str) -> str:
    """The short message for a failed call."""
    code = error.code()  # type: ignore[attr-defined,unused-ignore]
    details = error.details() or ""  # type: ignore[attr-defined,unused-ignore]
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"{server} unavailable: {details or 'not reachable'}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{server} did not answer in time"
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
    ):
        return details.removeprefix("invalid request: ") or code.name.lower()
    return f"{server} error {code.name}: {details}"


@contextmanager
def _translated(server: str) -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as error:
        raise ActionError(describe(error, server)) from error


def spec(job_type: str, payload: Mapping[str, Any], priority: int) -> job_pb2.JobSpec:
    struct = struct_pb2.Struct()
    struct.update(dict(payload))
    return job_pb2.JobSpec(type=job_type, payload=struct, priority=priority)


class GatewayClient:
    """JobService at `target` (host:port, Endpoints.gateway_grpc)."""

    def __init__(self, target: str, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = gateway_pb2_grpc.JobServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def submit(
        self, job_type: str, payload: Mapping[str, Any], count: int = 1, priority: int = 0
    ) -> list[str]:
        """Submits `count` identical jobs in batches of SUBMIT_BATCH; their ids in order.

        Each batch is all-or-nothing; if a later batch fails, the earlier ones stay submitted and
        the error says how many went through.
        """
        if not 1 <= count <= MAX_SUBMIT_COUNT:
            raise ActionError(f"count: must be 1..{MAX_SUBMIT_COUNT}")
        one = spec(job_type, payload, priority)
        ids: list[str] = []
        while len(ids) < count:
            batch = [one] * min(SUBMIT_BATCH, count - len(ids))
            try:
                response = self._stub.SubmitJobs(
                    gateway_pb2.SubmitJobsRequest(specs=batch), timeout=self._timeout
                )
            except grpc.RpcError as error:
                done = f" (after {len(ids)} submitted)" if ids else ""
                raise ActionError(describe(error, "gateway") + done) from error
            ids += [result.job_id for result in response.results]
        return ids

    def cancel(self, job_id: str, reason: str = "cancelled from the TUI") -> job_pb2.Job:
        with _translated("gateway"):
            request = gateway_pb2.CancelJobRequest(job_id=job_id, reason=reason)
            return self._stub.CancelJob(request, timeout=self._timeout).job

    def retry(self, job_id: str) -> job_pb2.Job:
        with _translated("gateway"):
            request = gateway_pb2.RetryJobRequest(job_id=job_id)
            return self._stub.RetryJob(request, timeout=self._timeout).job

    def retry_failed(self) -> int:
        with _translated("gateway"):
            request = gateway_pb2.RetryFailedJobsRequest()
            return self._stub.RetryFailedJobs(request, timeout=BULK_TIMEOUT_S).retried

    def replay_dead_letters(self) -> ReplayOutcome:
        with _translated("gateway"):
            request = gateway_pb2.ReplayDeadLettersRequest()
            response = self._stub.ReplayDeadLetters(request, timeout=BULK_TIMEOUT_S)
        return ReplayOutcome(
            tuple(response.replayed_job_ids),
            response.stale,
            tuple(Kept(k.reason, k.dead_letter_reason, k.job_id) for k in response.kept_messages),
        )


@dataclass(frozen=True)
class BulkCounts:
    """What the bulk actions would touch, for their confirmation dialogs."""

    failed: int
    dead_lettered: int
    dead_letter_messages: int


class ReadModelClient:
    """The read model at `target` (Endpoints.read_model_grpc): job detail and bulk counts."""

    def __init__(self, target: str, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = read_model_pb2_grpc.ReadModelServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def job_detail(self, job_id: str) -> rm.GetJobDetailResponse:
        with _translated("read model"):
            request = rm.GetJobDetailRequest(job_id=job_id)
            return self._stub.GetJobDetail(request, timeout=self._timeout)

    def bulk_counts(self) -> BulkCounts:
        with _translated("read model"):
            stats = self._stub.GetStats(rm.GetStatsRequest(), timeout=self._timeout).stats
            queues = self._stub.ListQueues(rm.ListQueuesRequest(), timeout=self._timeout).queues
        by_status = {c.status: c.count for c in stats.by_status}
        return BulkCounts(
            failed=by_status.get(job_pb2.JOB_STATUS_FAILED, 0),
            dead_lettered=by_status.get(job_pb2.JOB_STATUS_DEAD_LETTERED, 0),
            dead_letter_messages=_depth(queues, topology.DEAD_QUEUE),
        )


def _depth(queues: Sequence[rm.Queue], name: str) -> int:
    return next((q.depth + q.unacknowledged for q in queues if q.name == name), 0)
