"""ListEvents and job timelines from MongoDB: filters, order on (occurredAt, eventId), paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from observatory.events.v1 import event_pb2
from observatory.readmodel.v1 import read_model_pb2
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from services.aggregates.facts import UnknownEventError, facts_of
from services.metrics_engine.documents import from_document
from services.read_model import paging
from services.read_model.errors import InvalidArgumentError

Events = Collection[dict[str, Any]]
TIMELINE_LIMIT = 1000  # a job has a handful of events per attempt; this bounds a runaway one


@dataclass(frozen=True)
class EventQuery:
    filter: dict[str, Any]
    sort: list[tuple[str, int]]
    limit: int
    fingerprint: str


def build(request: read_model_pb2.ListEventsRequest) -> EventQuery:
    conditions: list[dict[str, Any]] = []
    if request.job_id:
        conditions.append({"jobId": request.job_id})
    if request.event_types:
        if event_pb2.EVENT_TYPE_UNSPECIFIED in request.event_types:
            raise InvalidArgumentError("event_types", "EVENT_TYPE_UNSPECIFIED is not an event type")
        names = [event_pb2.EventType.Name(t) for t in request.event_types]
        conditions.append({"eventType": {"$in": names}})
    if request.occurred.HasField("start_time"):
        start = request.occurred.start_time.ToDatetime(tzinfo=UTC)
        conditions.append({"occurredAt": {"$gte": start}})
    if request.occurred.HasField("end_time"):
        end = request.occurred.end_time.ToDatetime(tzinfo=UTC)
        conditions.append({"occurredAt": {"$lt": end}})
    limit = paging.page_size(request.page_size)
    fingerprint = paging.filters_fingerprint(request)
    after = paging.decode_token(request.page_token, fingerprint, key_length=1)
    beyond = "$lt" if request.newest_first else "$gt"
    if after is not None:
        conditions.append({"sortKey": {beyond: str(after[0])}})
    direction = DESCENDING if request.newest_first else ASCENDING
    query = {"$and": conditions} if conditions else {}
    return EventQuery(query, [("sortKey", direction)], limit, fingerprint)


def run(events: Events, query: EventQuery) -> read_model_pb2.ListEventsResponse:
    documents = list(events.find(query.filter, {"_id": 0}).sort(query.sort).limit(query.limit + 1))
    response = read_model_pb2.ListEventsResponse(
        events=[from_document(d) for d in documents[: query.limit]]
    )
    if len(documents) > query.limit:
        last = documents[query.limit - 1]["sortKey"]
        response.next_page_token = paging.encode_token([last], query.fingerprint)
    return response


def timeline(events: Events, job_id: str) -> list[event_pb2.EventEnvelope]:
    """Every event of a job, oldest first (ties in time by attempt and stage, like the stats)."""
    documents = events.find({"jobId": job_id}, {"_id": 0}).limit(TIMELINE_LIMIT)
    envelopes = [from_document(d) for d in documents]
    return sorted(envelopes, key=lambda e: (e.occurred_at.ToMilliseconds(), _sequence(e)))


def _sequence(envelope: event_pb2.EventEnvelope) -> int:
    try:
        return facts_of(envelope).sequence
    except UnknownEventError:
        return 0
