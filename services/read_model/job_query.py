"""ListJobs as SQL: filters -> a parameterised WHERE, keyset paging on (created_at, id) desc."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.jobstore import store
from services.read_model import paging
from services.read_model.errors import InvalidArgumentError


@dataclass(frozen=True)
class JobQuery:
    sql: str
    params: list[Any]
    limit: int  # page size; one more row is fetched to know whether a next page exists
    fingerprint: str


def payload_document(key: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for key "a.b": what `payload @> ...` must contain."""
    segments = key.split(".")
    if not key or any(not segment for segment in segments):
        raise InvalidArgumentError("payload_filters.key", f"expected a dotted path, got {key!r}")
    document: dict[str, Any] = {segments[-1]: value}
    for segment in reversed(segments[:-1]):
        document = {segment: document}
    return document


def build(request: read_model_pb2.ListJobsRequest) -> JobQuery:
    where: list[str] = []
    params: list[Any] = []
    if request.statuses:
        if job_pb2.JOB_STATUS_UNSPECIFIED in request.statuses:
            raise InvalidArgumentError("statuses", "JOB_STATUS_UNSPECIFIED is not a status")
        where.append("status = ANY(%s)")
        params.append([store.status_name(s) for s in request.statuses])
    if request.types:
        where.append("type = ANY(%s)")
        params.append(list(request.types))
    if request.created.HasField("start_time"):
        where.append("created_at >= %s")
        params.append(request.created.start_time.ToDatetime(tzinfo=UTC))
    if request.created.HasField("end_time"):
        where.append("created_at < %s")
        params.append(request.created.end_time.ToDatetime(tzinfo=UTC))
    for payload_filter in request.payload_filters:
        if not payload_filter.HasField("value"):
            raise InvalidArgumentError("payload_filters.value", "required")
        value = json_format.MessageToDict(payload_filter.value)
        where.append("payload @> %s")
        params.append(Jsonb(payload_document(payload_filter.key, value)))
    limit = paging.page_size(request.page_size)
    fingerprint = paging.filters_fingerprint(request)
    after = paging.decode_token(request.page_token, fingerprint, key_length=2)
    if after is not None:
        where.append("(created_at, id) < (%s, %s)")
        params.extend([_token_time(after[0]), _token_id(after[1])])
    sql = "SELECT * FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
    params.append(limit + 1)
    return JobQuery(sql, params, limit, fingerprint)


def _token_time(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidArgumentError(
            "page_token", "malformed; pass a next_page_token unchanged"
        ) from None


def _token_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidArgumentError(
            "page_token", "malformed; pass a next_page_token unchanged"
        ) from None


def run(conn: store.Conn, query: JobQuery) -> read_model_pb2.ListJobsResponse:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query.sql, query.params).fetchall()
    response = read_model_pb2.ListJobsResponse(
        jobs=[store.job_from_row(row) for row in rows[: query.limit]]
    )
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        response.next_page_token = paging.encode_token(
            [last["created_at"].isoformat(), str(last["id"])], query.fingerprint
        )
    return response
