"""The gRPC JobService: the same operations as the HTTP API, errors as standard status codes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import grpc
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc

from services.common import logs
from services.gateway import metrics, validation
from services.gateway.config import Limits
from services.gateway.dead_letters import DeadLetterReplay, replay_response
from services.gateway.service import ConflictError, Jobs, NotFoundError, UnavailableError
from services.gateway.validation import InvalidRequestError

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
TRANSPORT = "grpc"
T = TypeVar("T")

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def _abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    for kind, code in _CODES:
        if isinstance(error, kind):
            if kind is UnavailableError:
                log.warning("unavailable: %s", error)
                context.abort(code, "a backing service is down; retry later")
            prefix = "invalid request: " if kind is InvalidRequestError else ""
            context.abort(code, f"{prefix}{error}")
    raise error


class JobServiceServicer(gateway_pb2_grpc.JobServiceServicer):
    def __init__(
        self, jobs: Jobs, limits: Limits, dead_letters: DeadLetterReplay | None = None
    ) -> None:
        self._jobs = jobs
        self._limits = limits
        self._dead_letters = dead_letters

    @contextmanager
    def _call(
        self, context: grpc.ServicerContext, operation: str, correlation_id: str = "", jobs: int = 1
    ) -> Iterator[str]:
        """Correlation, timing and error mapping around one call; yields the correlation id."""
        try:
            # Validated before the handler runs, so refused metadata can never fail an answer
            # after the jobs were stored (gRPC metadata must be ASCII).
            cid = validation.correlation_id(correlation_id)
        except InvalidRequestError as error:
            _abort(context, error)
        context.set_trailing_metadata((("x-correlation-id", cid),))
        with logs.correlation(cid):
            try:
                with metrics.observed(TRANSPORT, operation, jobs=jobs):
                    yield cid
            except (InvalidRequestError, NotFoundError, ConflictError, UnavailableError) as error:
                _abort(context, error)

    def SubmitJob(  # noqa: N802 (gRPC method name)
        self, request: gateway_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.SubmitJobResponse:
        with self._call(context, "submit", request.correlation_id) as cid:
            problems = validation.check_spec(request.spec, self._limits, "spec.")
            if problems:
                raise InvalidRequestError(problems)
            (result,) = self._jobs.submit([request.spec], cid)
        metrics.count_submitted(TRANSPORT, [result], [request.spec.type])
        return gateway_pb2.SubmitJobResponse(
            job_id=result.job_id,
            event_id=result.event_id,
            status=result.status,
            duplicate=result.duplicate,
        )

    def SubmitJobs(  # noqa: N802
        self, request: gateway_pb2.SubmitJobsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.SubmitJobsResponse:
        specs = list(request.specs)
        with self._call(context, "submit_batch", request.correlation_id, len(specs)) as cid:
            problems = validation.check_batch(specs, self._limits)
            if problems:
                raise InvalidRequestError(problems)
            results = self._jobs.submit(specs, cid)
        metrics.count_submitted(TRANSPORT, results, [spec.type for spec in specs])
        return gateway_pb2.SubmitJobsResponse(
            results=[
                gateway_pb2.SubmitJobsResult(
                    job_id=r.job_id, event_id=r.event_id, status=r.status, duplicate=r.duplicate
                )
                for r in results
            ]
        )

    def CancelJob(  # noqa: N802
        self, request: gateway_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.CancelJobResponse:
        with self._call(context, "cancel"):
            job, event_id = self._jobs.cancel(request.job_id, request.reason[:500])
        return gateway_pb2.CancelJobResponse(job=job, event_id=event_id)

    def RetryJob(  # noqa: N802
        self, request: gateway_pb2.RetryJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.RetryJobResponse:
        with self._call(context, "retry"):
            job, event_id = self._jobs.retry(request.job_id)
        return gateway_pb2.RetryJobResponse(job=job, event_id=event_id)

    def GetJob(  # noqa: N802
        self, request: gateway_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.GetJobResponse:
        with self._call(context, "get"):
            job = self._jobs.get(request.job_id)
        return gateway_pb2.GetJobResponse(job=job)

    def RetryFailedJobs(  # noqa: N802
        self, request: gateway_pb2.RetryFailedJobsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.RetryFailedJobsResponse:
        with self._call(context, "retry_failed"):
            retried = self._jobs.retry_failed()
        return gateway_pb2.RetryFailedJobsResponse(retried=retried)

    def ReplayDeadLetters(  # noqa: N802
        self, request: gateway_pb2.ReplayDeadLettersRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ReplayDeadLettersResponse:
        if self._dead_letters is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "dead-letter replay is not configured")
        with self._call(context, "replay_dead_letters"):
            result = self._dead_letters.replay()
        return replay_response(result)


def registrar(servicer: JobServiceServicer) -> Callable[[grpc.Server], None]:
    def register(server: grpc.Server) -> None:
        gateway_pb2_grpc.add_JobServiceServicer_to_server(servicer, server)

    return register
