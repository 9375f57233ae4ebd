"""The consume loop: deliveries of one queue in batches -> one store -> acks, surviving outages.

The metrics engine runs one Consumer per store, each with its own queue, AMQP connection and
thread (service.py), so MongoDB's outage or slowness never holds the live aggregates back, nor
Redis's the event store. A delivery is one event or an EventBatch of them
(services/common/events.py); deliveries are decoded as they arrive and stored together, and a
batch of deliveries is acked only after the consumer's store has every event in it. While the
store is down the loop keeps the batch unacked and retries with backoff (and consumes nothing
more: prefetch caps the deliveries in flight), so no event is dropped; the queue's backlog grows
meanwhile. A lost broker connection is reopened with backoff; the broker redelivers the unacked
batch and the idempotent store ignores repeats.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pika
import pika.exceptions
from prometheus_client import Counter, Histogram

from services.aggregates.facts import UnknownEventError, facts_of
from services.common import amqp, events, lifecycle, topology
from services.common.config import redact
from services.common.logs import correlation
from services.metrics_engine.sink import DecodedEvent, Store

log = logging.getLogger(__name__)

# Labelled by store: each store's consumer sees (and drops) its own copy of every delivery.
STORE_ERRORS = Counter("metrics_engine_store_errors_total", "Failed store attempts", ["store"])
REJECTED = Counter(
    "metrics_engine_rejected_total", "Undecodable deliveries dropped, per store's queue", ["store"]
)
REJECTED_EVENTS = Counter(
    "metrics_engine_rejected_events_total",
    "Undecodable events dropped from decodable batches, per store's queue",
    ["store"],
)
PROCESSING = Histogram(
    "metrics_engine_processing_seconds",
    "Time to store one batch in one store (with retries)",
    ["store"],
)

IDLE_TICK_S = 0.25  # how often an idle consumer looks at its stop flag

# A delivery decoded: its tag, and its storable events (none: it is dropped, not stored).
Pending = list[tuple[int, list[DecodedEvent]]]


class Consumer:
    """Consumes `queue` into `store`: one consume loop, one AMQP connection, run on one thread."""

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        store: Store,
        *,
        prefetch: int,
        batch_wait_s: float,
        batch_events: int = 1000,
    ) -> None:
        self._url = amqp_url
        self.queue = queue
        self.store = store
        self._prefetch = prefetch
        self._batch_events = batch_events
        self._batch_wait_s = max(batch_wait_s, 0.01)
        self.connected = threading.Event()
        self._had_connection = False

    def run(self, stop: threading.Event) -> None:
        """Consumes until `stop` is set; reconnects with backoff on broker failures."""
        delays = lifecycle.backoff()
        while not stop.is_set():
            try:
                self._consume(stop)
            except (pika.exceptions.AMQPError, OSError) as error:
                if self._had_connection:  # a fresh outage starts with short delays again
                    delays, self._had_connection = lifecycle.backoff(), False
                delay = next(delays)
                log.warning(
                    "broker unavailable at %s (%s); retrying in %.1fs",
                    redact(self._url),
                    type(error).__name__,
                    delay,
                )
                stop.wait(delay)
            except Exception:  # a bug must not silently end consumption: log, back off, go on
                log.exception("consumer failed; the unacked batch will be redelivered")
                stop.wait(next(delays))

    def _consume(self, stop: threading.Event) -> None:
        connection = amqp.connect(self._url, connection_name=connection_name(self.store))
        try:
            channel = connection.channel()
            topology.declare(channel)
            channel.basic_qos(prefetch_count=self._prefetch)
            self.connected.set()
            self._had_connection = True
            log.info("consuming %s into %s", self.queue, self.store.label)
            pending: Pending = []
            pending_events = 0
            first_at = 0.0  # when the oldest pending delivery arrived
            # Two views of the one consumer (pika resumes it for the same queue): with a batch
            # pending, a quiet spell of batch_wait_s flushes it; with none, the loop only needs to
            # notice `stop`, so an idle engine wakes 4 times a second, not 40.
            batching = channel.consume(self.queue, inactivity_timeout=self._batch_wait_s)
            idle = channel.consume(self.queue, inactivity_timeout=IDLE_TICK_S)
            while True:
                delivery = next(batching if pending else idle, None)
                if delivery is None:
                    return  # the broker cancelled the consumer: reconnect
                method, props, body = delivery
                if method is not None:
                    if not pending:
                        first_at = time.monotonic()
                    decoded = _decode(self.store.label, method.delivery_tag, props.type, body)
                    pending.append((method.delivery_tag, decoded))
                    pending_events += len(decoded)
                    # A batch waits at most batch_wait_s from its first delivery, however
                    # steadily events trickle in: that bounds the read model's staleness.
                    if (
                        len(pending) < self._prefetch
                        and pending_events < self._batch_events
                        and time.monotonic() - first_at < self._batch_wait_s
                        and not stop.is_set()
                    ):
                        continue
                if pending:
                    if not self._flush(connection, channel, pending, stop):
                        return  # stopping with a batch unstored: the broker redelivers it
                    pending, pending_events = [], 0
                if stop.is_set():
                    channel.cancel()
                    return
        finally:
            self.connected.clear()
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()

    def _flush(
        self,
        connection: pika.BlockingConnection,
        channel: pika.adapters.blocking_connection.BlockingChannel,
        pending: Pending,
        stop: threading.Event,
    ) -> bool:
        """Stores the batch and acks it; False if asked to stop before it could be stored."""
        started = time.monotonic()
        batch = [e for _, decoded in pending for e in decoded]
        good_tags = [tag for tag, decoded in pending if decoded]
        for tag in (tag for tag, decoded in pending if not decoded):
            channel.basic_nack(tag, requeue=False)
        delays = lifecycle.backoff()
        while batch:
            try:
                self._write(batch)
                break
            except self.store.outage_errors as error:
                delay = next(delays)
                log.warning(
                    "storing %d events in %s failed (%s: %s); retrying in %.1fs",
                    len(batch),
                    self.store.label,
                    type(error).__name__,
                    str(error)[:200],
                    delay,
                )
                if stop.is_set():
                    return False
                connection.sleep(delay)  # keeps the broker connection (heartbeats) alive
        if batch:  # acks every delivery up to the batch's last good one
            channel.basic_ack(good_tags[-1], multiple=True)
        PROCESSING.labels(self.store.label).observe(time.monotonic() - started)
        return True

    def _write(self, batch: list[DecodedEvent]) -> None:
        store = self.store
        with correlation(batch[0].envelope.correlation_id):
            try:
                store.write(batch)
            except store.outage_errors:
                STORE_ERRORS.labels(store.label).inc()
                raise
            log.debug("stored %d events in %s", len(batch), store.label)


def connection_name(store: Store) -> str:
    """The AMQP connection name of a store's consumer, as the broker lists it."""
    return f"metrics-engine {store.label}"


def _decode(store: str, tag: int, message_type: str | None, body: bytes) -> list[DecodedEvent]:
    """The storable events of one delivery; none if it holds no event at all (it is dropped
    then). An undecodable event inside a batch is dropped alone: the rest of the batch counts."""
    try:
        envelopes = events.from_message(message_type, body)
    except events.EventDecodeError as error:
        REJECTED.labels(store).inc()
        log.error("%s: dropping undecodable delivery %d: %s", store, tag, error)
        return []
    good = []
    for envelope in envelopes:
        try:
            facts = facts_of(envelope)
        except UnknownEventError as error:
            REJECTED_EVENTS.labels(store).inc()
            log.error(
                "%s: dropping undecodable event %r of delivery %d: %s",
                store,
                envelope.event_id,
                tag,
                error,
            )
            continue
        good.append(DecodedEvent(envelope, facts))
    if not good:
        REJECTED.labels(store).inc()
        log.error(
            "%s: dropping delivery %d: none of its %d events is decodable",
            store,
            tag,
            len(envelopes),
        )
    return good
