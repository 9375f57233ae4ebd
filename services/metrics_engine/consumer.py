"""The consume loop: deliveries in batches -> both stores -> acks, surviving outages.

A delivery is one event or an EventBatch of them (services/common/events.py); deliveries are
decoded as they arrive and stored together, and a batch of deliveries is acked only after MongoDB
and Redis both have every event in it. While a store is down the loop keeps the batch unacked and
retries with backoff (and consumes nothing more: prefetch caps the deliveries in flight), so no
event is dropped. A lost broker connection is reopened with backoff; the broker redelivers the
unacked batch and the idempotent stores ignore repeats.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pika
import pika.exceptions
from observatory.events.v1 import event_pb2
from prometheus_client import Counter, Histogram
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from services.aggregates.facts import UnknownEventError, facts_of
from services.common import amqp, events, lifecycle, topology
from services.common.config import redact
from services.common.logs import correlation
from services.metrics_engine.sink import EventSink

log = logging.getLogger(__name__)

STORE_ERRORS = Counter("metrics_engine_store_errors_total", "Failed store attempts", ["store"])
REJECTED = Counter("metrics_engine_rejected_total", "Undecodable deliveries dropped")
REJECTED_EVENTS = Counter(
    "metrics_engine_rejected_events_total", "Undecodable events dropped from decodable batches"
)
PROCESSING = Histogram(
    "metrics_engine_processing_seconds", "Time to store one batch in both stores (with retries)"
)

# A delivery decoded: its tag, and its storable events (none: it is dropped, not stored).
Pending = list[tuple[int, list[event_pb2.EventEnvelope]]]


class Consumer:
    def __init__(
        self,
        amqp_url: str,
        sink: EventSink,
        *,
        prefetch: int,
        batch_wait_s: float,
        batch_events: int = 1000,
    ) -> None:
        self._url = amqp_url
        self._sink = sink
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
        connection = amqp.connect(self._url, connection_name="metrics-engine")
        try:
            channel = connection.channel()
            topology.declare(channel)
            channel.basic_qos(prefetch_count=self._prefetch)
            self.connected.set()
            self._had_connection = True
            log.info("consuming %s", topology.METRICS_QUEUE)
            pending: Pending = []
            pending_events = 0
            first_at = 0.0  # when the oldest pending delivery arrived
            for method, props, body in channel.consume(
                topology.METRICS_QUEUE, inactivity_timeout=self._batch_wait_s
            ):
                if method is not None:
                    if not pending:
                        first_at = time.monotonic()
                    decoded = _decode(method.delivery_tag, props.type, body)
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
        envelopes = [e for _, decoded in pending for e in decoded]
        good_tags = [tag for tag, decoded in pending if decoded]
        for tag in (tag for tag, decoded in pending if not decoded):
            channel.basic_nack(tag, requeue=False)
        delays = lifecycle.backoff()
        while envelopes:
            try:
                self._store(envelopes)
                break
            except (PyMongoError, RedisError) as error:
                delay = next(delays)
                log.warning(
                    "storing %d events failed (%s: %s); retrying in %.1fs",
                    len(envelopes),
                    type(error).__name__,
                    str(error)[:200],
                    delay,
                )
                if stop.is_set():
                    return False
                connection.sleep(delay)  # keeps the broker connection (heartbeats) alive
        if envelopes:  # acks every delivery up to the batch's last good one
            channel.basic_ack(good_tags[-1], multiple=True)
        PROCESSING.observe(time.monotonic() - started)
        return True

    def _store(self, envelopes: list[event_pb2.EventEnvelope]) -> None:
        with correlation(envelopes[0].correlation_id):
            try:
                self._sink.store_documents(envelopes)
            except PyMongoError:
                STORE_ERRORS.labels("mongodb").inc()
                raise
            try:
                new = self._sink.apply_aggregates(envelopes)
            except RedisError:
                STORE_ERRORS.labels("redis").inc()
                raise
            log.debug("stored %d events, %d new", len(envelopes), new)


def _decode(tag: int, message_type: str | None, body: bytes) -> list[event_pb2.EventEnvelope]:
    """The storable events of one delivery; none if it holds no event at all (it is dropped
    then). An undecodable event inside a batch is dropped alone: the rest of the batch counts."""
    try:
        envelopes = events.from_message(message_type, body)
    except events.EventDecodeError as error:
        REJECTED.inc()
        log.error("dropping undecodable delivery %d: %s", tag, error)
        return []
    good = []
    for envelope in envelopes:
        try:
            facts_of(envelope)
        except UnknownEventError as error:
            REJECTED_EVENTS.inc()
            log.error(
                "dropping undecodable event %r of delivery %d: %s", envelope.event_id, tag, error
            )
            continue
        good.append(envelope)
    if not good:
        REJECTED.inc()
        log.error("dropping delivery %d: none of its %d events is decodable", tag, len(envelopes))
    return good
