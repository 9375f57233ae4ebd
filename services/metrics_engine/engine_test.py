"""The metrics engine against real RabbitMQ, MongoDB(-wire) and Redis: every event stored once,
aggregates exact under duplicates and redelivery, and each store consuming its own queue: one
store down holds back only its own queue, the other keeps up, and nothing is lost."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from services.aggregates.store import Aggregates
from services.common import amqp, http_json, rabbitmq_management, redis_store, topology
from services.common import mongo as mongo_client
from services.common.wire import EVENT_BATCH_MESSAGE_TYPE, EVENT_MESSAGE_TYPE
from services.metrics_engine.config import MetricsEngineConfig
from services.metrics_engine.consumer import connection_name
from services.metrics_engine.documents import COLLECTION, DATABASE
from services.metrics_engine.sample_events import JobStory, publish
from services.metrics_engine.service import MetricsEngine, start
from tools.testing.servers import MongoServer, RabbitMQServer, RedisServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_port
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
mongo = server_fixture("mongo", MongoServer, scope="module")
redis_server = server_fixture("redis_server", RedisServer, scope="module")


@pytest.fixture
def clean(rabbitmq: RabbitMQServer, mongo: MongoServer, redis_server: RedisServer) -> None:
    redis_store.connect(redis_server.info.url).flushdb()
    with mongo_client.connect(mongo.info.url) as client:
        client[DATABASE][COLLECTION].delete_many({})


def config(rabbitmq: RabbitMQServer, mongo: MongoServer, redis_url: str) -> MetricsEngineConfig:
    return MetricsEngineConfig(
        amqp_url=rabbitmq.info.amqp_url,
        mongo_url=mongo.info.url,
        redis_url=redis_url,
        http_port=0,
        prefetch=50,
        batch_wait_s=0.02,
    )


@pytest.fixture
def engine(
    clean: None, rabbitmq: RabbitMQServer, mongo: MongoServer, redis_server: RedisServer
) -> Iterator[MetricsEngine]:
    running = start(config(rabbitmq, mongo, redis_server.info.url))
    yield running
    running.stop()


def stories(now: datetime) -> list[JobStory]:
    return [
        JobStory(now, "email").created().started(1, 30).completed(1, 200),
        JobStory(now, "email")
        .created()
        .started(1, 10)
        .retry(1, 50)
        .started(2, 20)
        .completed(2, 100),
        JobStory(now, "resize").created().started(1, 40).failed(1, 70),
        JobStory(now, "resize").created().started(1, 5).retry(1, 5).dead_lettered(1),
        JobStory(now, "resize").created(),
    ]


def mongo_events(mongo: MongoServer) -> list[dict[str, Any]]:
    with mongo_client.connect(mongo.info.url) as client:
        return list(client[DATABASE][COLLECTION].find({}, {"_id": 0}))


def queue_state(rabbitmq: RabbitMQServer, queue: str) -> rabbitmq_management.QueueStats:
    auth = (rabbitmq.info.username, rabbitmq.info.password)
    return rabbitmq_management.queue(rabbitmq.info.management_url, queue, auth=auth)


def wait_drained(rabbitmq: RabbitMQServer, queue: str) -> None:
    wait_for(
        lambda: queue_state(rabbitmq, queue).messages,
        what=f"{queue} to drain",
        until=lambda depth: depth == 0,
    )


def counts(stats_by_status: object) -> dict[str, int]:
    return {
        job_pb2.JobStatus.Name(c.status): c.count
        for c in stats_by_status  # type: ignore[attr-defined]
        if c.count
    }


def test_each_event_stored_once_and_aggregates_exact(
    engine: MetricsEngine, rabbitmq: RabbitMQServer, mongo: MongoServer, redis_server: RedisServer
) -> None:
    jobs = stories(datetime.now(UTC) - timedelta(seconds=5))
    all_events = [e for story in jobs for e in story.events]
    # Every event once (batched per type), then duplicates: a republished batch, one event three
    # times, and the same events as single-envelope messages (the pre-batching wire form).
    publish(rabbitmq.info.amqp_url, all_events)
    publish(rabbitmq.info.amqp_url, [*all_events[:6], all_events[2], all_events[2]])
    publish(rabbitmq.info.amqp_url, all_events[:3], batched=False)

    stored = wait_for(
        lambda: mongo_events(mongo),
        what="every event in MongoDB",
        until=lambda docs: len(docs) >= len(all_events),
    )
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    # The aggregates consume their own queue: they may be ahead of MongoDB or behind it.
    wait_for(
        lambda: aggregates.stats().total_jobs, what="every job counted", until=lambda n: n == 5
    )
    for queue in topology.METRICS_ENGINE_QUEUES:
        wait_drained(rabbitmq, queue)
    assert sorted(d["eventId"] for d in stored) == sorted(e.event_id for e in all_events)
    first = next(d for d in stored if d["eventId"] == all_events[0].event_id)
    assert set(first) == {
        "eventId", "eventType", "occurredAt", "jobId", "correlationId", "idempotencyKey",
        "producer", "contractVersion", "payload", "sortKey",
    }  # fmt: skip
    assert isinstance(first["occurredAt"], datetime)

    stats = aggregates.stats()
    assert counts(stats.by_status) == {
        "JOB_STATUS_PENDING": 1,
        "JOB_STATUS_COMPLETED": 2,
        "JOB_STATUS_FAILED": 1,
        "JOB_STATUS_DEAD_LETTERED": 1,
    }
    assert stats.total_jobs == 5
    by_type = {t.type: (t.total, counts(t.by_status)) for t in stats.by_type}
    assert by_type == {
        "email": (2, {"JOB_STATUS_COMPLETED": 2}),
        "resize": (3, {"JOB_STATUS_PENDING": 1, "JOB_STATUS_FAILED": 1,
                       "JOB_STATUS_DEAD_LETTERED": 1}),
    }  # fmt: skip
    assert aggregates.totals() == {
        "submitted": 5, "started": 5, "retried": 2, "completed": 2, "failed": 1,
        "cancelled": 0, "dead_lettered": 1,
    }  # fmt: skip
    minute = stats.throughput[0]
    assert sum(b.submitted for b in minute.buckets) == 5
    assert sum(b.failed for b in minute.buckets) == 2  # failed + dead-lettered
    assert sum(b.retried for b in minute.buckets) == 2
    # queue waits 30, 10, 20, 40, 5; run times 200, 100, 70 (completed and failed attempts)
    assert stats.queue_wait.sample_count == 5
    assert stats.queue_wait.p50.ToMilliseconds() == 20
    assert stats.queue_wait.p99.ToMilliseconds() in (40, 41)  # 40's histogram bucket
    assert stats.run.sample_count == 3
    assert stats.run.p50.ToMilliseconds() == 100
    assert stats.end_to_end.sample_count == 4
    assert 0 < stats.end_to_end.p50.ToMilliseconds() <= stats.end_to_end.p99.ToMilliseconds()

    # An older event arriving late (as a single-envelope message) does not move its job back.
    publish(rabbitmq.info.amqp_url, [_copy_with_new_id(jobs[0].events[1])], batched=False)
    wait_for(lambda: aggregates.totals()["started"], what="the late event", until=lambda n: n == 6)
    assert counts(aggregates.stats().by_status)["JOB_STATUS_COMPLETED"] == 2


def _copy_with_new_id(envelope: event_pb2.EventEnvelope) -> event_pb2.EventEnvelope:
    copy = event_pb2.EventEnvelope()
    copy.CopyFrom(envelope)
    copy.event_id = str(uuid.uuid4())
    copy.idempotency_key = f"{copy.job_id}/late"
    return copy


@pytest.mark.parametrize("down", ["redis", "mongodb"])
def test_a_store_down_holds_back_only_its_own_queue(
    down: str,
    clean: None,
    rabbitmq: RabbitMQServer,
    mongo: MongoServer,
    redis_server: RedisServer,
) -> None:
    now = datetime.now(UTC)
    stories = [JobStory(now).created().started(1, 10).completed(1, 20) for _ in range(2)]
    story_events = [e for story in stories for e in story.events]
    event_ids = sorted(e.event_id for e in story_events)
    nowhere = f"127.0.0.1:{free_port()}"
    broken_config = config(rabbitmq, mongo, redis_server.info.url)
    if down == "redis":
        broken_config = dataclasses.replace(broken_config, redis_url=f"redis://{nowhere}/0")
        held, flowing = topology.AGGREGATES_QUEUE, topology.EVENT_STORE_QUEUE
    else:
        broken_config = dataclasses.replace(broken_config, mongo_url=f"mongodb://{nowhere}/")
        held, flowing = topology.EVENT_STORE_QUEUE, topology.AGGREGATES_QUEUE
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    broken = start(broken_config)
    try:
        publish(rabbitmq.info.amqp_url, story_events)
        # The store that is up gets every event, and its queue drains...
        if down == "redis":
            stored = wait_for(
                lambda: mongo_events(mongo), what="MongoDB", until=lambda d: len(d) == 6
            )
            assert sorted(d["eventId"] for d in stored) == event_ids
        else:
            wait_for(
                lambda: counts(aggregates.stats().by_status),
                what="the aggregates with MongoDB down",
                until=lambda c: c == {"JOB_STATUS_COMPLETED": 2},
            )
        wait_drained(rabbitmq, flowing)
        # ... while the other's events stay on its queue, delivered but unacked: 6 events
        # travel as 3 batches, one per event type.
        wait_for(
            lambda: queue_state(rabbitmq, held),
            what=f"the broker to count 3 unacked batches on {held}",
            until=lambda queue: queue.messages == 3 and queue.consumers == 1,
        )
        if down == "redis":
            assert aggregates.totals()["submitted"] == 0
        else:
            assert mongo_events(mongo) == []
        status, body = http_get(f"http://127.0.0.1:{broken.http.port}/readyz")
        assert status == 503 and down in body["failures"]
    finally:
        broken.stop()

    healthy = start(config(rabbitmq, mongo, redis_server.info.url))
    try:
        # Back: the held queue is redelivered and drains; every event is in each store once.
        wait_drained(rabbitmq, held)
        wait_for(
            lambda: counts(aggregates.stats().by_status),
            what="the aggregates",
            until=lambda c: c == {"JOB_STATUS_COMPLETED": 2},
        )
        assert {k: n for k, n in aggregates.totals().items() if n} == {
            "submitted": 2, "started": 2, "completed": 2,
        }  # fmt: skip
        stored = wait_for(lambda: mongo_events(mongo), what="MongoDB", until=lambda d: len(d) >= 6)
        assert sorted(d["eventId"] for d in stored) == event_ids
        assert queue_state(rabbitmq, flowing).messages == 0
        status, metrics = http_get(f"http://127.0.0.1:{healthy.http.port}/metrics", raw=True)
        assert (
            'metrics_engine_events_consumed_total{event_type="EVENT_TYPE_JOB_CREATED"}' in metrics
        )
        assert f'metrics_engine_processing_seconds_count{{store="{down}"}}' in metrics
    finally:
        healthy.stop()


def http_get(url: str, *, raw: bool = False) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body if raw else json.loads(body)


def test_lost_broker_connections_are_reopened(
    engine: MetricsEngine, rabbitmq: RabbitMQServer, mongo: MongoServer, redis_server: RedisServer
) -> None:
    info = rabbitmq.info
    auth = (info.username, info.password)
    names = {connection_name(consumer.store) for consumer in engine.consumers}

    def engine_connections() -> dict[str, str]:
        """connection name -> the broker's id of it, for the engine's consumers."""
        listed = http_json.get_json(info.management_url + "/api/connections", auth=auth)
        named = ((c["client_properties"].get("connection_name"), c["name"]) for c in listed)
        return {name: broker_id for name, broker_id in named if name in names}

    ours = wait_for(
        engine_connections, what="a connection per consumer", until=lambda c: c.keys() == names
    )
    for broker_id in ours.values():
        http_json.request_json(
            "DELETE", f"{info.management_url}/api/connections/{urllib.parse.quote(broker_id)}",
            auth=auth,
        )  # fmt: skip
    event = JobStory(datetime.now(UTC)).created().events
    publish(rabbitmq.info.amqp_url, event)
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    wait_for(
        lambda: aggregates.totals()["submitted"],
        what="the event in the aggregates after reconnecting",
        until=lambda n: n == 1,
    )
    wait_for(
        lambda: [d["eventId"] for d in mongo_events(mongo)],
        what="the event in MongoDB after reconnecting",
        until=lambda ids: ids == [event[0].event_id],
    )
    renewed = wait_for(
        engine_connections, what="new connections", until=lambda c: c.keys() == names
    )
    assert not set(renewed.values()) & set(ours.values())


def test_undecodable_deliveries_and_events_are_dropped_without_blocking_the_queue(
    engine: MetricsEngine, rabbitmq: RabbitMQServer, mongo: MongoServer, redis_server: RedisServer
) -> None:
    good, also_good = JobStory(datetime.now(UTC)).created(), JobStory(datetime.now(UTC)).created()
    no_payload = event_pb2.EventEnvelope(event_id=str(uuid.uuid4()), job_id=str(uuid.uuid4()))
    mixed = event_pb2.EventBatch(events=[good.events[0], no_payload])
    connection = amqp.connect(rabbitmq.info.amqp_url)
    try:
        channel = amqp.confirmed_channel(connection)
        for body, message_type in [
            (b"\xff garbage", EVENT_MESSAGE_TYPE),
            (b"\xff garbage", EVENT_BATCH_MESSAGE_TYPE),
            (good.events[0].SerializeToString(), None),  # no AMQP type: not an event message
            (mixed.SerializeToString(), EVENT_BATCH_MESSAGE_TYPE),  # one bad event of two
        ]:
            channel.basic_publish(
                topology.EVENTS_EXCHANGE,
                "job.created",
                body,
                properties=pika.BasicProperties(type=message_type, delivery_mode=2),
                mandatory=True,
            )
    finally:
        connection.close()
    publish(rabbitmq.info.amqp_url, also_good.events)
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    wait_for(
        lambda: aggregates.totals()["submitted"], what="the good events", until=lambda n: n == 2
    )
    stored = wait_for(
        lambda: {d["eventId"] for d in mongo_events(mongo)},
        what="the good events in MongoDB",
        until=lambda ids: len(ids) >= 2,
    )
    assert stored == {good.events[0].event_id, also_good.events[0].event_id}
    status, metrics = http_get(f"http://127.0.0.1:{engine.http.port}/metrics", raw=True)
    assert status == 200
    for store in ("mongodb", "redis"):  # each store's consumer drops its own copy
        assert f'metrics_engine_rejected_total{{store="{store}"}} 3.0' in metrics
        assert f'metrics_engine_rejected_events_total{{store="{store}"}} 1.0' in metrics
    for queue in topology.METRICS_ENGINE_QUEUES:
        wait_drained(rabbitmq, queue)
