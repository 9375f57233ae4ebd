"""Stores a batch of events in both places: MongoDB (the audit trail) and Redis (aggregates).

Both writes are idempotent (a unique index on eventId; the aggregates' seen-keys), so a batch
that failed half-way is simply stored again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from observatory.events.v1 import event_pb2
from prometheus_client import Counter
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from services.aggregates.facts import facts_of
from services.aggregates.store import Aggregates
from services.metrics_engine.documents import to_document

_DUPLICATE_KEY = 11000
log = logging.getLogger(__name__)

EVENTS_STORED = Counter(
    "metrics_engine_events_consumed_total", "Events stored, by event type", ["event_type"]
)
DUPLICATES = Counter(
    "metrics_engine_duplicates_skipped_total", "Events already applied (redelivered or replayed)"
)


class EventSink:
    def __init__(self, collection: Collection[dict[str, Any]], aggregates: Aggregates) -> None:
        self._events = collection
        self._aggregates = aggregates
        self._indexed = False

    def ensure_indexes(self) -> None:
        """eventId: deduplication; jobId: job timelines and ListEvents by job; sortKey: ListEvents
        order and paging. No occurredAt index: no query needs it (time-range queries were no
        faster with it on the MongoDB-wire server) and each index adds to every insert; databases
        that have it keep it."""
        self._events.create_index([("eventId", ASCENDING)], unique=True, name="eventId_unique")
        self._events.create_index([("jobId", ASCENDING)], name="jobId")
        self._events.create_index([("sortKey", ASCENDING)], unique=True, name="sortKey")
        self._indexed = True

    def store_documents(self, envelopes: Sequence[event_pb2.EventEnvelope]) -> None:
        if not self._indexed:
            self.ensure_indexes()
        try:
            self._events.insert_many([to_document(e) for e in envelopes], ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details["writeErrors"] if e["code"] != _DUPLICATE_KEY]
            if others:
                raise

    def apply_aggregates(self, envelopes: Sequence[event_pb2.EventEnvelope]) -> int:
        """Returns how many events were new to the aggregates."""
        applied = self._aggregates.apply([facts_of(e) for e in envelopes])
        for envelope, new in zip(envelopes, applied, strict=True):
            if new:
                EVENTS_STORED.labels(event_pb2.EventType.Name(envelope.event_type)).inc()
            else:
                DUPLICATES.inc()
        return sum(applied)
