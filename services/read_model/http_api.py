"""The HTTP JSON mirror of ReadModelService, plus the Alertmanager webhook and offline /docs.

Responses are the gRPC responses in the protobuf JSON mapping (camelCase, enums by name), so a
client sees the same data on either face.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from starlette.concurrency import run_in_threadpool

from services.common.http_app import add_docs, ops_app
from services.read_model.alerts import to_proto
from services.read_model.errors import UNAVAILABLE_ERRORS, InvalidArgumentError, NotFoundError
from services.read_model.reader import ReadModel
from services.read_model.watch import WatchHub

MAX_WEBHOOK_BYTES = 1024 * 1024


def _json(message: Message) -> dict[str, Any]:
    # snake_case field names, like the gateway's HTTP API (and the protos).
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _enum(field: str, names: list[str], prefix: str, value_of: Callable[[str], int]) -> list[int]:
    values = []
    for name in names:
        full = name.upper() if name.upper().startswith(prefix) else prefix + name.upper()
        try:
            values.append(value_of(full))
        except ValueError:
            raise InvalidArgumentError(field, f"unknown value {name!r}") from None
    return values


def _time(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgumentError(field, f"expected an ISO 8601 time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _range(target: rm.TimeRange, start: datetime | None, end: datetime | None) -> None:
    if start is not None:
        target.start_time.FromDatetime(start)
    if end is not None:
        target.end_time.FromDatetime(end)


def payload_filter(text: str) -> rm.PayloadFilter:
    """ "customer.id=42" -> key customer.id, JSON value 42 (a non-JSON value is a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidArgumentError("payload", f"expected key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    result = rm.PayloadFilter(key=key)
    json_format.ParseDict(value, result.value)
    return result


def create_app(
    reader: ReadModel, hub: WatchHub, readiness: dict[str, Callable[[], object]]
) -> FastAPI:
    app = ops_app(
        "Observatory read model",
        readiness,
        docs_url=None,
        redoc_url=None,
        description="Read-only queries over jobs, events, queues and alerts (mirror of gRPC).",
    )
    add_docs(app, "Observatory read model")

    @app.exception_handler(InvalidArgumentError)
    def invalid(_request: Request, error: InvalidArgumentError) -> JSONResponse:
        return JSONResponse({"error": str(error), "field": error.field}, status_code=400)

    @app.exception_handler(NotFoundError)
    def not_found(_request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    def bad_parameter(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        field = str(first["loc"][-1]) if first.get("loc") else "request"
        return JSONResponse(
            {"error": f"{field}: {first.get('msg', 'invalid')}", "field": field}, status_code=400
        )

    for backend_error in UNAVAILABLE_ERRORS:

        @app.exception_handler(backend_error)
        def unavailable(_request: Request, error: Exception) -> JSONResponse:
            return JSONResponse(
                {"error": f"backend unavailable: {type(error).__name__}"}, status_code=503
            )

    @app.get("/stats", summary="Counts, throughput series and latency quantiles")
    def stats() -> dict[str, Any]:
        return _json(reader.get_stats(rm.GetStatsRequest()))

    @app.get("/jobs", summary="Jobs matching filters, newest first, cursor-paged")
    def jobs(
        *,
        status: Annotated[list[str], Query(description="e.g. completed; repeat for OR")] = [],  # noqa: B006
        type: Annotated[list[str], Query(description="job type; repeat for OR")] = [],  # noqa: B006
        created_after: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
        created_before: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
        payload: Annotated[
            list[str], Query(description="key=JSON value, e.g. customer.id=42")
        ] = [],  # noqa: B006
        page_size: Annotated[int, Query(ge=0)] = 0,
        page_token: str = "",
    ) -> dict[str, Any]:
        request = rm.ListJobsRequest(
            statuses=_enum("status", status, "JOB_STATUS_", job_pb2.JobStatus.Value),  # type: ignore[arg-type]
            types=type,
            payload_filters=[payload_filter(p) for p in payload],
            page_size=page_size,
            page_token=page_token,
        )
        _range(
            request.created,
            _time("created_after", created_after),
            _time("created_before", created_before),
        )
        return _json(reader.list_jobs(request))

    @app.get("/jobs/{job_id}", summary="One job with its attempts and event timeline")
    def job_detail(job_id: str) -> dict[str, Any]:
        return _json(reader.get_job_detail(rm.GetJobDetailRequest(job_id=job_id)))

    @app.get("/events", summary="Lifecycle events, oldest first unless newest_first")
    def events(
        *,
        job_id: str = "",
        type: Annotated[list[str], Query(description="e.g. job_completed; repeat for OR")] = [],  # noqa: B006
        occurred_after: str | None = None,
        occurred_before: str | None = None,
        newest_first: bool = False,
        page_size: Annotated[int, Query(ge=0)] = 0,
        page_token: str = "",
    ) -> dict[str, Any]:
        request = rm.ListEventsRequest(
            job_id=job_id,
            event_types=_enum("type", type, "EVENT_TYPE_", event_pb2.EventType.Value),  # type: ignore[arg-type]
            newest_first=newest_first,
            page_size=page_size,
            page_token=page_token,
        )
        _range(
            request.occurred,
            _time("occurred_after", occurred_after),
            _time("occurred_before", occurred_before),
        )
        return _json(reader.list_events(request))

    @app.get("/queues", summary="Broker queues with backlog and consumers")
    def queues() -> dict[str, Any]:
        return _json(reader.list_queues(rm.ListQueuesRequest()))

    @app.get("/alerts", summary="Alerts, firing first")
    def alerts(
        state: Annotated[list[str], Query(description="firing or resolved")] = [],  # noqa: B006
    ) -> dict[str, Any]:
        states = _enum("state", state, "ALERT_STATE_", rm.AlertState.Value)
        return _json(reader.list_alerts(rm.ListAlertsRequest(states=states)))  # type: ignore[arg-type]

    @app.post("/alerts/webhook", summary="Alertmanager webhook receiver (payload version 4)")
    async def alert_webhook(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, f"body: at most {MAX_WEBHOOK_BYTES} bytes")
        body = await request.body()
        try:
            document = json.loads(body)
        except ValueError:
            raise InvalidArgumentError("body", "expected JSON") from None
        rows = await run_in_threadpool(reader.receive_alerts, document)
        for row in rows:
            hub.publish_alert(to_proto(row))
        return {"received": len(rows)}

    return app
