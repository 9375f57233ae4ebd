"""The metrics engine as a running thing: two consumer threads (event store, live aggregates),
a queue-gauge thread and the ops HTTP server, started and stopped together."""

from __future__ import annotations

import logging
import threading

from services.aggregates.store import Aggregates
from services.common import mongo, redis_store, topology
from services.common.config import redact
from services.common.http_app import HttpServer, ops_app
from services.metrics_engine import queue_gauges
from services.metrics_engine.config import MetricsEngineConfig
from services.metrics_engine.consumer import Consumer
from services.metrics_engine.documents import COLLECTION, DATABASE
from services.metrics_engine.sink import EventSink

log = logging.getLogger(__name__)


class MetricsEngine:
    def __init__(self, config: MetricsEngineConfig) -> None:
        self._mongo = mongo.connect(config.mongo_url, app_name="metrics-engine", timeout=5)
        self._redis = redis_store.connect(config.redis_url)
        sink = EventSink(
            mongo.database(self._mongo, DATABASE)[COLLECTION],
            Aggregates(self._redis, completed_job_ttl_s=config.dedupe_window_s),
        )
        # Each store consumes its own copy of the events: the live aggregates never wait for
        # MongoDB (slower, and maybe down), nor the event store for Redis.
        self.consumers = [
            Consumer(
                config.amqp_url,
                queue,
                store,
                prefetch=config.prefetch,
                batch_wait_s=config.batch_wait_s,
                batch_events=config.batch_events,
            )
            for queue, store in (
                (topology.EVENT_STORE_QUEUE, sink.event_store()),
                (topology.AGGREGATES_QUEUE, sink.live_aggregates()),
            )
        ]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=consumer.run,
                args=(self._stop,),
                name=f"consumer-{consumer.store.label}",
                daemon=True,
            )
            for consumer in self.consumers
        ]
        self._gauges = threading.Thread(
            target=queue_gauges.poll,
            args=(config.amqp_url, self._stop),
            name="queue-gauges",
            daemon=True,
        )
        app = ops_app(
            "metrics-engine",
            {
                "rabbitmq": lambda: all(c.connected.is_set() for c in self.consumers),
                "mongodb": lambda: self._mongo.admin.command("ping"),
                "redis": self._redis.ping,
            },
        )
        self.http = HttpServer(app, config.http_host, config.http_port)
        log.info(
            "metrics engine: mongo %s, redis %s, amqp %s",
            redact(config.mongo_url),
            redact(config.redis_url),
            redact(config.amqp_url),
        )

    def start(self) -> MetricsEngine:
        self.http.start()
        for thread in self._threads:
            thread.start()
        self._gauges.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Finishes the batches in hand (acked or left for redelivery), then closes everything."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._gauges.join(timeout)
        self.http.stop()
        self._redis.close()
        self._mongo.close()


def start(config: MetricsEngineConfig) -> MetricsEngine:
    return MetricsEngine(config).start()
