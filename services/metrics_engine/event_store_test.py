"""The event store's batch insert: each event stored once, in one transaction where the server
has them, and without where it has none (a standalone MongoDB)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from observatory.events.v1 import event_pb2
from pymongo.errors import OperationFailure

from services.common import mongo as mongo_client
from services.metrics_engine.documents import from_document
from services.metrics_engine.sample_events import JobStory
from services.metrics_engine.sink import EventSink
from tools.testing.servers import MongoServer
from tools.testing.servers.fixtures import server_fixture

pytest_plugins = ["tools.testing.servers.pytest_plugin"]

mongo = server_fixture("mongo", MongoServer, scope="module")
T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
NO_AGGREGATES: Any = object()  # only the event store is exercised here


@pytest.fixture
def events(mongo: MongoServer) -> Iterator[Any]:
    with mongo_client.connect(mongo.info.url) as client:
        collection = client["event_store_test"]["job_events"]
        collection.drop()
        yield collection


def stories(count: int) -> list[event_pb2.EventEnvelope]:
    envelopes = []
    for n in range(count):
        story = JobStory(T0, job_type="email").created().started(1, 5).completed(1, 9)
        if n % 2:  # no correlation id: the document leaves the field out, the reader restores it
            for envelope in story.events:
                envelope.correlation_id = ""
        envelopes += story.events
    return envelopes


@pytest.mark.integration
def test_a_batch_is_stored_once_and_a_redelivered_batch_adds_nothing(events: Any) -> None:
    sink = EventSink(events, NO_AGGREGATES)
    batch = stories(50)
    sink.store_documents(batch)
    assert events.count_documents({}) == 150
    assert sink.uses_transactions  # the MongoDB-wire server has them: one commit per batch

    # A redelivery overlapping what is stored: the transaction rolls back on the duplicate, and
    # the batch is stored one by one, skipping what is there.
    more = stories(10)
    sink.store_documents(batch[:30] + more)
    assert events.count_documents({}) == 180
    assert sink.uses_transactions  # a duplicate is not a missing feature

    stored = {d["eventId"]: from_document(d) for d in events.find({}, {"_id": 0})}
    assert stored == {e.event_id: e for e in batch + more}  # lossless, empty strings included


class StandaloneCollection:
    """A collection on a standalone MongoDB: a transaction is refused with IllegalOperation."""

    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []
        self.database = self
        self.client = self

    def start_session(self) -> Any:
        return self

    def start_transaction(self) -> Any:
        return self

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def create_index(self, *args: object, **kwargs: object) -> None:
        return None

    def insert_many(self, documents: list[dict[str, Any]], **kwargs: object) -> None:
        if kwargs.get("session") is not None:
            raise OperationFailure("Transaction numbers are only allowed on a replica set", 20)
        self.inserted += documents


def test_a_server_without_transactions_gets_plain_inserts_from_then_on() -> None:
    collection: Any = StandaloneCollection()
    sink = EventSink(collection, NO_AGGREGATES)
    sink.store_documents(stories(2))
    assert not sink.uses_transactions
    sink.store_documents(stories(1))
    assert len(collection.inserted) == 9


def test_other_server_errors_in_a_transaction_are_not_swallowed() -> None:
    collection: Any = StandaloneCollection()

    def failing(documents: list[dict[str, Any]], **kwargs: object) -> None:
        raise OperationFailure("not primary", 10107)

    collection.insert_many = failing
    sink = EventSink(collection, NO_AGGREGATES)
    with pytest.raises(OperationFailure):
        sink.store_documents(stories(1))
    assert sink.uses_transactions
