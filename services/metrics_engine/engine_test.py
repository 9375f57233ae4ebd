"""The metrics engine against real RabbitMQ, MongoDB(-wire) and Redis: every event stored once,
aggregates exact under duplicates and redelivery, nothing lost while Redis is down."""

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
    wait_for(
        lambda: (
            rabbitmq_management.queue(
                rabbitmq.info.management_url,
                topology.METRICS_QUEUE,
                auth=(rabbitmq.info.username, rabbitmq.info.password),
            ).messages
        ),
        what="the metrics queue to drain",
        until=lambda depth: depth == 0,
    )
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
def test_a_store_down_keeps_events_unacked_until_it_is_back(
    down: str,
    clean: None,
    rabbitmq: RabbitMQServer,
    mongo: MongoServer,
    redis_server: RedisServer,
) -> None:
    management = rabbitmq.info.management_url
    auth = (rabbitmq.info.username, rabbitmq.info.password)
    now = datetime.now(UTC)
    stories = [JobStory(now).created().started(1, 10).completed(1, 20) for _ in range(2)]
    story_events = [e for story in stories for e in story.events]
    nowhere = f"127.0.0.1:{free_port()}"
    broken_config = config(rabbitmq, mongo, redis_server.info.url)
    if down == "redis":
        broken_config = dataclasses.replace(broken_config, redis_url=f"redis://{nowhere}/0")
    else:
        broken_config = dataclasses.replace(broken_config, mongo_url=f"mongodb://{nowhere}/")
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    broken = start(broken_config)
    try:
        publish(rabbitmq.info.amqp_url, story_events)
        # Delivered but not stored in both places: nothing may be acked. 6 events travel as 3
        # batches, one per event type.
        wait_for(
            lambda: rabbitmq_management.queue(management, topology.METRICS_QUEUE, auth=auth),
            what="the broker to count 3 unacked batches",
            until=lambda queue: queue.messages == 3 and queue.consumers == 1,
        )
        status, body = http_get(f"http://127.0.0.1:{broken.http.port}/readyz")
        assert status == 503 and down in body["failures"]
        assert aggregates.totals()["submitted"] == 0
    finally:
        broken.stop()

    healthy = start(config(rabbitmq, mongo, redis_server.info.url))
    try:
        wait_for(
            lambda: counts(aggregates.stats().by_status),
            what="the redelivered batches in both stores",
            until=lambda c: c == {"JOB_STATUS_COMPLETED": 2},
        )
        assert aggregates.totals()["submitted"] == 2
        stored = wait_for(lambda: mongo_events(mongo), what="MongoDB", until=lambda d: len(d) == 6)
        assert sorted(d["eventId"] for d in stored) == sorted(e.event_id for e in story_events)
        status, metrics = http_get(f"http://127.0.0.1:{healthy.http.port}/metrics", raw=True)
        assert (
            'metrics_engine_events_consumed_total{event_type="EVENT_TYPE_JOB_CREATED"}' in metrics
        )
    finally:
        healthy.stop()


def http_get(url: str, *, raw: bool = False) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body if raw else json.loads(body)


def test_a_lost_broker_connection_is_reopened(
    engine: MetricsEngine, rabbitmq: RabbitMQServer, redis_server: RedisServer
) -> None:
    info = rabbitmq.info
    auth = (info.username, info.password)

    def engine_connections() -> list[str]:
        listed = http_json.get_json(info.management_url + "/api/connections", auth=auth)
        names = (c["client_properties"].get("connection_name") for c in listed)
        return [
            c["name"] for c, name in zip(listed, names, strict=True) if name == "metrics-engine"
        ]

    ours = wait_for(engine_connections, what="the engine's connection", until=lambda c: len(c) == 1)
    http_json.request_json(
        "DELETE", f"{info.management_url}/api/connections/{urllib.parse.quote(ours[0])}", auth=auth
    )
    publish(rabbitmq.info.amqp_url, JobStory(datetime.now(UTC)).created().events)
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    wait_for(
        lambda: aggregates.totals()["submitted"],
        what="the event after reconnecting",
        until=lambda n: n == 1,
    )
    assert (
        wait_for(engine_connections, what="one new connection", until=lambda c: len(c) == 1) != ours
    )


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
    stored = {d["eventId"] for d in mongo_events(mongo)}
    assert stored == {good.events[0].event_id, also_good.events[0].event_id}
    status, metrics = http_get(f"http://127.0.0.1:{engine.http.port}/metrics", raw=True)
    assert status == 200
    assert "metrics_engine_rejected_total 3.0" in metrics
    assert "metrics_engine_rejected_events_total 1.0" in metrics
    auth = (rabbitmq.info.username, rabbitmq.info.password)
    wait_for(
        lambda: (
            rabbitmq_management.queue(
                rabbitmq.info.management_url, topology.METRICS_QUEUE, auth=auth
            ).messages
        ),
        what="the metrics queue to drain",
        until=lambda depth: depth == 0,
    )
