"""The HTTP/JSON API on the ops app (FastAPI): the same operations as the gRPC JobService.

Bodies are read and checked by hand (size first, then JSON, then fields) so every client error
has one shape: 400 {"error": "invalid request", "details": [{"field", "problem"}]}.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from observatory.jobs.v1 import job_pb2

from services.common import logs
from services.common.http_app import ReadinessChecks, add_docs, ops_app
from services.gateway import metrics, openapi_doc, validation
from services.gateway.config import Limits
from services.gateway.dead_letters import DeadLetterReplay, replay_response
from services.gateway.service import ConflictError, Jobs, NotFoundError, Submitted, UnavailableError
from services.gateway.validation import InvalidRequestError

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-Id"
TRANSPORT = "http"


class BodyTooLargeError(Exception):
    pass


def submitted_json(result: Submitted) -> dict[str, object]:
    return {
        "job_id": result.job_id,
        "event_id": result.event_id,
        "status": job_pb2.JobStatus.Name(result.status),
        "duplicate": result.duplicate,
    }


def message_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping, with the .proto field names."""
    data: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return data


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def invalid_response(problems: list[tuple[str, str]]) -> JSONResponse:
    details = [{"field": field, "problem": problem} for field, problem in problems]
    return JSONResponse({"error": "invalid request", "details": details}, status_code=400)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


def build_app(
    jobs: Jobs,
    limits: Limits,
    readiness: ReadinessChecks,
    dead_letters: DeadLetterReplay | None = None,
) -> FastAPI:
    app = ops_app(
        "Observatory gateway",
        readiness,
        version="1.0.0",
        description="Submit and control jobs (the same operations as gRPC JobService).",
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app, "Observatory gateway")
    _add_error_handlers(app)

    @app.middleware("http")
    async def correlation(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            cid = validation.correlation_id(
                request.headers.get(CORRELATION_HEADER), "X-Correlation-Id"
            )
        except InvalidRequestError as error:  # refused before any handler runs
            return invalid_response(error.problems)
        request.state.correlation_id = cid
        with logs.correlation(cid):
            response = await call_next(request)
        response.headers[CORRELATION_HEADER] = cid
        return response

    @app.post(
        "/jobs",
        status_code=202,
        summary="Submit a job",
        openapi_extra=openapi_doc.request_body(openapi_doc.spec_schema(limits)),
        responses=openapi_doc.errors(413),
    )
    async def submit_job(request: Request) -> JSONResponse:
        with metrics.observed(TRANSPORT, "submit"):
            data = validation.parse_json(await read_body(request, limits.max_body_bytes))
            spec = validation.check_json_spec(data, limits)
            results = await run_in_threadpool(jobs.submit, [spec], request.state.correlation_id)
        metrics.count_submitted(TRANSPORT, results, [spec.type])
        return JSONResponse(submitted_json(results[0]), status_code=202)

    @app.post(
        "/jobs:batch",
        status_code=202,
        summary="Submit up to 500 jobs at once (all or nothing)",
        openapi_extra=openapi_doc.request_body(openapi_doc.batch_schema(limits)),
        responses=openapi_doc.errors(413),
    )
    async def submit_jobs(request: Request) -> JSONResponse:
        with metrics.observed(TRANSPORT, "submit_batch"):
            data = validation.parse_json(await read_body(request, limits.max_body_bytes))
            specs = validation.check_json_batch(data, limits)
            results = await run_in_threadpool(jobs.submit, specs, request.state.correlation_id)
        metrics.count_submitted(TRANSPORT, results, [spec.type for spec in specs])
        return JSONResponse({"results": [submitted_json(r) for r in results]}, status_code=202)

    @app.get(
        "/jobs/{job_id}",
        summary="The job's current record (system of record)",
        responses=openapi_doc.errors(404),
    )
    def get_job(job_id: str) -> dict[str, Any]:
        with metrics.observed(TRANSPORT, "get"):
            return {"job": message_json(jobs.get(job_id))}

    @app.post(
        "/jobs/{job_id}/cancel",
        summary="Cancel a job (a running one cooperatively)",
        responses=openapi_doc.errors(404, 409),
    )
    def cancel_job(job_id: str, reason: str = "") -> dict[str, Any]:
        with metrics.observed(TRANSPORT, "cancel"):
            job, event_id = jobs.cancel(job_id, reason[:500])
        return {"job": message_json(job), "event_id": event_id}

    @app.post(
        "/jobs/{job_id}/retry",
        summary="Re-queue a failed, dead-lettered or cancelled job",
        responses=openapi_doc.errors(404, 409),
    )
    def retry_job(job_id: str) -> dict[str, Any]:
        with metrics.observed(TRANSPORT, "retry"):
            job, event_id = jobs.retry(job_id)
        return {"job": message_json(job), "event_id": event_id}

    @app.post(
        "/jobs:retry-failed",
        summary="Re-queue every failed and dead-lettered job",
        responses=openapi_doc.errors(),
    )
    def retry_failed() -> dict[str, int]:
        with metrics.observed(TRANSPORT, "retry_failed"):
            return {"retried": jobs.retry_failed()}

    @app.post(
        "/jobs:replay-dead-letters",
        summary="Re-queue the dead-lettered jobs in jobs.dead; poison messages stay",
        responses=openapi_doc.errors(501),
    )
    def replay_dead_letters() -> JSONResponse:
        if dead_letters is None:
            return _error(501, "not implemented", "dead-letter replay is not configured")
        with metrics.observed(TRANSPORT, "replay_dead_letters"):
            result = dead_letters.replay()
        # Zero counts included, so a client can read `stale` without a default.
        body = json_format.MessageToDict(
            replay_response(result),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        return JSONResponse(body)

    openapi_doc.without_framework_422(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequestError)
    async def invalid(_: Request, error: InvalidRequestError) -> JSONResponse:
        return invalid_response(error.problems)

    @app.exception_handler(RequestValidationError)
    async def invalid_framework(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks (query parameters): same 400 shape instead of its 422.
        problems = [
            (
                ".".join(str(part) for part in e["loc"] if part not in ("body", "query", "path")),
                e["msg"],
            )
            for e in error.errors()
        ]
        return invalid_response(problems)

    @app.exception_handler(BodyTooLargeError)
    async def too_large(_: Request, __: BodyTooLargeError) -> JSONResponse:
        return _error(413, "request too large", "the request body exceeds the size limit")

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, error: NotFoundError) -> JSONResponse:
        return _error(404, "not found", str(error))

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, error: ConflictError) -> JSONResponse:
        return _error(409, "conflict", str(error))

    @app.exception_handler(UnavailableError)
    async def unavailable(_: Request, error: UnavailableError) -> JSONResponse:
        log.warning("unavailable: %s", error)
        response = _error(503, "unavailable", "a backing service is down; retry later")
        response.headers["Retry-After"] = "1"
        return response
