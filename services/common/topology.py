"""The AMQP topology: every exchange, queue and binding the services use, declared in one place.

Declaring is idempotent, so each service declares everything it touches at start-up (and after a
reconnect) and no start order is needed. See services/README.md for the picture.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

JOBS_EXCHANGE = "observatory.jobs"  # direct: work messages
WORK_QUEUE = "jobs.work"
WORK_ROUTING_KEY = "work"
MAX_PRIORITY = 9  # JobSpec.priority 0..9, higher first

RETRY_EXCHANGE = "observatory.retry"  # direct: routing key = retry queue name
DEAD_EXCHANGE = "observatory.dead"  # fanout: exhausted jobs and poison messages
DEAD_QUEUE = "jobs.dead"

EVENTS_EXCHANGE = "observatory.events"  # topic: routing key = event type ("job.completed")
# The metrics engine's two copies of every event, consumed independently so that one store's
# outage or slowness never holds the other back. The event store keeps the queue name from before
# the split, so an upgraded broker's backlog still reaches MongoDB.
EVENT_STORE_QUEUE = "metrics-engine.events"  # -> MongoDB event store (timelines, ListEvents)
AGGREGATES_QUEUE = "metrics-engine.aggregates"  # -> Redis live aggregates (GetStats)
METRICS_ENGINE_QUEUES = (EVENT_STORE_QUEUE, AGGREGATES_QUEUE)

CONTROL_EXCHANGE = "observatory.control"  # fanout: cancel broadcasts to every processor

# Retry queues are created on demand, one per delay; idle ones vanish a minute after their TTL.
RETRY_QUEUE_IDLE_MS = 60_000


def retry_queue(delay_ms: int) -> str:
    return f"jobs.retry.{delay_ms}ms"


def declare(channel: BlockingChannel) -> None:
    """Declares the fixed part of the topology (everything but the per-delay retry queues)."""
    channel.exchange_declare(JOBS_EXCHANGE, "direct", durable=True)
    channel.exchange_declare(RETRY_EXCHANGE, "direct", durable=True)
    channel.exchange_declare(DEAD_EXCHANGE, "fanout", durable=True)
    channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
    channel.exchange_declare(CONTROL_EXCHANGE, "fanout", durable=True)
    channel.queue_declare(DEAD_QUEUE, durable=True)
    channel.queue_bind(DEAD_QUEUE, DEAD_EXCHANGE)
    # A message the processor rejects (undecodable, unknown version) lands in jobs.dead with
    # RabbitMQ's x-death header saying why; it never blocks the queue.
    channel.queue_declare(
        WORK_QUEUE,
        durable=True,
        arguments={"x-max-priority": MAX_PRIORITY, "x-dead-letter-exchange": DEAD_EXCHANGE},
    )
    channel.queue_bind(WORK_QUEUE, JOBS_EXCHANGE, WORK_ROUTING_KEY)
    # Declared by producers too, so events published before the metrics engine starts are kept
    # (in both queues).
    for queue in METRICS_ENGINE_QUEUES:
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, EVENTS_EXCHANGE, "job.#")


def declare_retry_queue(channel: BlockingChannel, delay_ms: int) -> str:
    """A queue whose messages go back to the work queue `delay_ms` after they entered it.

    One queue per delay keeps expiry first-in first-out (RabbitMQ expires only at the head).
    """
    name = retry_queue(delay_ms)
    channel.queue_declare(
        name,
        durable=True,
        arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": JOBS_EXCHANGE,
            "x-dead-letter-routing-key": WORK_ROUTING_KEY,
            "x-expires": delay_ms + RETRY_QUEUE_IDLE_MS,
        },
    )
    channel.queue_bind(name, RETRY_EXCHANGE, name)
    return name
