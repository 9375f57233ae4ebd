"""The metrics engine's two stores of events: MongoDB (the audit trail) and Redis (aggregates).

Each is fed by its own consumer and queue (consumer.py). Both writes are idempotent (`_id` is the
eventId; the aggregates' seen-keys), so a batch that failed half-way, or is redelivered,
is simply stored again.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from observatory.events.v1 import event_pb2
from prometheus_client import Counter
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from redis.exceptions import RedisError

from services.aggregates.facts import EventFacts
from services.aggregates.store import Aggregates
from services.metrics_engine.documents import to_document

_DUPLICATE_KEY = 11000
_ILLEGAL_OPERATION = 20  # a standalone server asked for a transaction
log = logging.getLogger(__name__)

EVENTS_STORED = Counter(
    "metrics_engine_events_consumed_total",
    "Events new to the aggregates, by event type",
    ["event_type"],
)
DUPLICATES = Counter(
    "metrics_engine_duplicates_skipped_total", "Events already applied (redelivered or replayed)"
)


@dataclass(frozen=True)
class DecodedEvent:
    """One delivered event as the consumer decoded it: the envelope and what it changes in the
    aggregates (computing the facts is how the consumer checks an event is storable, so both
    are kept and the aggregates do not compute them again)."""

    envelope: event_pb2.EventEnvelope
    facts: EventFacts


@dataclass(frozen=True)
class Store:
    """One store as its consumer sees it: how to write a batch, and what an outage looks like."""

    label: str  # "mongodb" / "redis": the `store` metric label and the name in logs
    write: Callable[[Sequence[DecodedEvent]], object]  # idempotent
    outage_errors: tuple[type[Exception], ...]  # retried with backoff; the batch stays unacked


class EventSink:
    def __init__(self, collection: Collection[dict[str, Any]], aggregates: Aggregates) -> None:
        self._events = collection
        self._aggregates = aggregates
        self._indexed = False
        self._transactions = True  # until the server says it has none

    def ensure_indexes(self) -> None:
        """jobId: job timelines and ListEvents by job; sortKey: ListEvents order and paging.
        Deduplication is the `_id` index (`_id` is the eventId). No occurredAt index: no query
        needs it (time-range queries were no faster with it on the MongoDB-wire server) and each
        index adds to every insert. Databases written before `_id` was the eventId keep their
        unique eventId index, which still catches a redelivery of one of their old events."""
        self._events.create_index([("jobId", ASCENDING)], name="jobId")
        self._events.create_index([("sortKey", ASCENDING)], unique=True, name="sortKey")
        self._indexed = True

    def store_documents(self, envelopes: Sequence[event_pb2.EventEnvelope]) -> None:
        """Inserts a batch, skipping events already stored. In one transaction where the server
        has them (one commit per batch, not per document: 40 % less CPU per event on the
        MongoDB-wire server); a batch holding a duplicate (a redelivery) rolls back and is
        inserted one by one instead, and a standalone MongoDB (no transactions) always is."""
        if not self._indexed:
            self.ensure_indexes()
        documents = [to_document(e) for e in envelopes]
        if self._transactions and self._insert_in_transaction(documents):
            return
        try:
            self._events.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details["writeErrors"] if e["code"] != _DUPLICATE_KEY]
            if others:
                raise

    @property
    def uses_transactions(self) -> bool:
        return self._transactions

    def _insert_in_transaction(self, documents: list[dict[str, Any]]) -> bool:
        """True if stored; False if the batch must be inserted without a transaction."""
        try:
            with (
                self._events.database.client.start_session() as session,
                session.start_transaction(),
            ):
                self._events.insert_many(documents, session=session)
        except BulkWriteError:  # a duplicate: the transaction rolled back, nothing was stored
            return False
        except OperationFailure as error:
            if error.code != _ILLEGAL_OPERATION:
                raise
            # "Transaction numbers are only allowed on a replica set member or mongos"
            log.info("the MongoDB server has no transactions; inserting batches without them")
            self._transactions = False
            return False
        return True

    def apply_aggregates(self, events: Sequence[DecodedEvent]) -> int:
        """Returns how many events were new to the aggregates."""
        applied = self._aggregates.apply([event.facts for event in events])
        new_by_type = collections.Counter(
            event.envelope.event_type for event, new in zip(events, applied, strict=True) if new
        )
        for event_type, count in new_by_type.items():  # one locked increment per series
            EVENTS_STORED.labels(event_pb2.EventType.Name(event_type)).inc(count)
        new_events = sum(new_by_type.values())
        if new_events < len(events):
            DUPLICATES.inc(len(events) - new_events)
        return new_events

    def event_store(self) -> Store:
        def write(events: Sequence[DecodedEvent]) -> None:
            self.store_documents([event.envelope for event in events])

        return Store("mongodb", write, (PyMongoError,))

    def live_aggregates(self) -> Store:
        return Store("redis", self.apply_aggregates, (RedisError,))
