"""The Watch feed against a real RabbitMQ: events are routed to the read model only while someone
watches jobs, and the first job watcher misses nothing published after it subscribed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.common import rabbitmq_management, topology
from services.metrics_engine.sample_events import JobStory, publish
from services.read_model.watch import WatchHub, WatchOptions
from tools.testing.servers import RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
T0 = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
JOBS = WatchOptions(stats=False, jobs=True, alerts=False, stats_interval_s=1.0)
STATS_ONLY = WatchOptions(stats=True, jobs=False, alerts=False, stats_interval_s=1.0)


@pytest.fixture
def hub(rabbitmq: RabbitMQServer) -> Iterator[WatchHub]:
    hub = WatchHub(rabbitmq.info.amqp_url, job_lookup=lambda job_id: None)
    stop = threading.Event()
    thread = threading.Thread(target=hub.run, args=(stop,), daemon=True)
    thread.start()
    assert hub.connected.wait(30), "the watch feed never connected"
    yield hub
    stop.set()
    thread.join(10)


def feed_queues(rabbitmq: RabbitMQServer) -> set[str]:
    """Queues the events exchange routes to, other than the metrics engine's own."""
    auth = (rabbitmq.info.username, rabbitmq.info.password)
    routed = rabbitmq_management.bound_queues(
        rabbitmq.info.management_url, topology.EVENTS_EXCHANGE, auth=auth
    )
    return {name for name in routed if name.startswith("amq.gen-")}


def test_events_reach_the_read_model_only_while_someone_watches_jobs(
    rabbitmq: RabbitMQServer, hub: WatchHub
) -> None:
    assert feed_queues(rabbitmq) == set()
    stats_watcher = hub.subscribe(STATS_ONLY)  # stats come from the aggregates, not the feed
    assert feed_queues(rabbitmq) == set()

    watcher = hub.subscribe(JOBS)
    assert len(feed_queues(rabbitmq)) == 1  # bound before subscribe returned
    story = JobStory(T0).created().started(1, 4)
    publish(rabbitmq.info.amqp_url, story.events)  # right after subscribing: nothing is missed
    seen = [watcher.updates.get(timeout=10).job_changed.event for _ in story.events]
    assert [e.event_id for e in seen] == [e.event_id for e in story.events]
    assert stats_watcher.updates.empty()

    hub.unsubscribe(watcher)
    wait_for(
        lambda: feed_queues(rabbitmq),
        what="the feed to be unbound",
        until=lambda q: not q,
        timeout=5,
    )
    hub.unsubscribe(stats_watcher)

    again = hub.subscribe(JOBS)  # and bound again for the next watcher
    later = JobStory(T0).created()
    publish(rabbitmq.info.amqp_url, later.events)
    assert again.updates.get(timeout=10).job_changed.event.event_id == later.events[0].event_id
    hub.unsubscribe(again)
