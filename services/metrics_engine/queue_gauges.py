"""Queue depth and consumers of the work, dead-letter and metrics engine queues, as the project's
own metrics (a growing metrics-engine queue: that store is down or behind).

Read with a passive `queue.declare` every few seconds: plain AMQP, so the backlog and
worker-absent alerts work with any broker setup, management or prometheus plugin or not.
"""

from __future__ import annotations

import logging
import threading

import pika.exceptions
from prometheus_client import Gauge

from services.common import amqp, topology
from services.common.lifecycle import backoff

log = logging.getLogger(__name__)

QUEUES = (topology.WORK_QUEUE, topology.DEAD_QUEUE, *topology.METRICS_ENGINE_QUEUES)
MESSAGES_READY = Gauge(
    "observatory_queue_messages_ready", "Messages waiting to be delivered", ["queue"]
)
CONSUMERS = Gauge("observatory_queue_consumers", "Consumers attached", ["queue"])


def poll(amqp_url: str, stop: threading.Event, interval_s: float = 5.0) -> None:
    """Updates the gauges until `stop` is set; reconnects with backoff when the broker is away."""
    delays = backoff()
    while not stop.is_set():
        try:
            connection = amqp.connect(amqp_url, connection_name="metrics-engine queue gauges")
            try:
                channel = connection.channel()
                topology.declare(channel)
                delays = backoff()
                while not stop.is_set():
                    for queue in QUEUES:
                        ok = channel.queue_declare(queue, passive=True).method
                        MESSAGES_READY.labels(queue).set(ok.message_count)
                        CONSUMERS.labels(queue).set(ok.consumer_count)
                    stop.wait(interval_s)
            finally:
                if connection.is_open:
                    connection.close()
        except (pika.exceptions.AMQPError, OSError) as error:
            log.warning("queue gauges: broker unavailable, retrying: %s", error)
            stop.wait(next(delays))
