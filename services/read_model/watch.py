"""Live updates for Watch: one AMQP consumer fans lifecycle events out to every watcher.

The read model reads the events exchange through its own exclusive, auto-delete queue (a live
feed: what happens while it is disconnected is not replayed; watchers re-query on reconnect).
The queue is bound only while someone watches jobs: with no watcher the broker routes nothing to
it and the read model decodes nothing (every job's events would otherwise cost both, for no one).
The first job watcher's subscribe waits until the binding is made, so it misses nothing published
after its Watch began. Each watcher has a bounded queue; one that falls too far behind is told so
and disconnected.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pika
import pika.exceptions
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from pika.adapters.blocking_connection import BlockingChannel

from services.aggregates.facts import UnknownEventError, facts_of
from services.common import amqp, events, lifecycle, topology
from services.common.config import redact
from services.read_model.errors import InvalidArgumentError

log = logging.getLogger(__name__)

MIN_STATS_INTERVAL_S = 0.25
MAX_PENDING = 1000  # updates buffered per watcher before it counts as too slow
BIND_WAIT_S = 2.0  # how long a first job watcher waits for the feed's binding


@dataclass(frozen=True)
class WatchOptions:
    stats: bool
    jobs: bool
    alerts: bool
    stats_interval_s: float
    statuses: frozenset[int] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def of(cls, request: rm.WatchRequest, default_interval_s: float) -> WatchOptions:
        topics = set(request.topics)
        if rm.WATCH_TOPIC_UNSPECIFIED in topics:
            raise InvalidArgumentError(
                "topics", "WATCH_TOPIC_UNSPECIFIED; leave topics empty for all"
            )
        if job_pb2.JOB_STATUS_UNSPECIFIED in request.job_statuses:
            raise InvalidArgumentError("job_statuses", "JOB_STATUS_UNSPECIFIED is not a status")
        interval = default_interval_s
        if request.HasField("stats_interval"):
            interval = request.stats_interval.ToNanoseconds() / 1e9
        return cls(
            stats=not topics or rm.WATCH_TOPIC_STATS in topics,
            jobs=not topics or rm.WATCH_TOPIC_JOBS in topics,
            alerts=not topics or rm.WATCH_TOPIC_ALERTS in topics,
            stats_interval_s=max(interval, MIN_STATS_INTERVAL_S),
            statuses=frozenset(request.job_statuses),
            types=frozenset(request.job_types),
        )

    def wants(self, job: job_pb2.Job) -> bool:
        return (
            self.jobs
            and (not self.statuses or job.status in self.statuses)
            and (not self.types or job.type in self.types)
        )


@dataclass(eq=False)  # identity: each watcher is its own subscription
class Subscription:
    options: WatchOptions
    updates: queue.Queue[rm.WatchResponse] = field(default_factory=lambda: queue.Queue(MAX_PENDING))
    overflowed: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    def offer(self, update: rm.WatchResponse) -> None:
        try:
            self.updates.put_nowait(update)
        except queue.Full:
            self.overflowed = True


@dataclass
class _Feed:
    """The hub's connection to the events exchange; used on the consumer thread only."""

    connection: pika.BlockingConnection
    channel: BlockingChannel
    queue: str
    bound: bool = False


class WatchHub:
    def __init__(self, amqp_url: str, job_lookup: Callable[[str], job_pb2.Job | None]) -> None:
        self._url = amqp_url
        self._lookup = job_lookup
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._feed: _Feed | None = None
        self.connected = threading.Event()

    def subscribe(self, options: WatchOptions) -> Subscription:
        subscription = Subscription(options)
        with self._lock:
            self._subscriptions.add(subscription)
            feed = self._feed
        if options.jobs and feed is not None and not feed.bound:
            self._bind_before_returning(feed)
        return subscription

    def _bind_before_returning(self, feed: _Feed) -> None:
        bound = threading.Event()

        def bind() -> None:
            self._route_if_watched(feed)
            bound.set()

        try:  # channel calls belong to the consumer thread: ask it to bind now
            feed.connection.add_callback_threadsafe(bind)
        except (pika.exceptions.AMQPError, OSError):
            return  # the feed is reconnecting; it binds on connect
        bound.wait(BIND_WAIT_S)

    def _route_if_watched(self, feed: _Feed) -> None:
        """Binds the feed's queue while someone watches jobs, unbinds it when nobody does."""
        with self._lock:
            wanted = any(s.options.jobs for s in self._subscriptions)
        if wanted and not feed.bound:
            feed.channel.queue_bind(feed.queue, topology.EVENTS_EXCHANGE, "job.#")
        elif feed.bound and not wanted:
            feed.channel.queue_unbind(feed.queue, topology.EVENTS_EXCHANGE, "job.#")
        feed.bound = wanted

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def watchers(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def close_all(self) -> None:
        with self._lock:
            for subscription in self._subscriptions:
                subscription.closed.set()

    def _current(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)

    def publish_alert(self, alert: rm.Alert) -> None:
        update = rm.WatchResponse(alert_changed=rm.AlertChanged(alert=alert))
        for subscription in self._current():
            if subscription.options.alerts:
                subscription.offer(update)

    def publish_event(self, envelope: event_pb2.EventEnvelope) -> None:
        subscriptions = [s for s in self._current() if s.options.jobs]
        if not subscriptions:
            return
        job = self._job_after(envelope)
        update = rm.WatchResponse(job_changed=rm.JobChanged(job=job, event=envelope))
        for subscription in subscriptions:
            if subscription.options.wants(job):
                subscription.offer(update)

    def _job_after(self, envelope: event_pb2.EventEnvelope) -> job_pb2.Job:
        """The job as PostgreSQL has it (committed before the event was published)."""
        try:
            job = self._lookup(envelope.job_id)
        except Exception as error:  # PostgreSQL down: still tell watchers what changed
            log.warning("job %s lookup failed: %s", envelope.job_id, error)
            job = None
        if job is None:
            job = job_pb2.Job(id=envelope.job_id, status=facts_of(envelope).status)
            if envelope.WhichOneof("payload") == "job_created":
                job.type = envelope.job_created.spec.type
        return job

    def run(self, stop: threading.Event) -> None:
        """Consumes until `stop` is set, reconnecting with backoff."""
        delays = lifecycle.backoff()
        while not stop.is_set():
            try:
                self._consume(stop)
                delays = lifecycle.backoff()
            except (pika.exceptions.AMQPError, OSError) as error:
                self.connected.clear()
                delay = next(delays)
                log.warning(
                    "watch feed: broker unavailable at %s (%s); retrying in %.1fs",
                    redact(self._url),
                    type(error).__name__,
                    delay,
                )
                stop.wait(delay)

    def _consume(self, stop: threading.Event) -> None:
        connection = amqp.connect(self._url, connection_name="read-model-watch")
        try:
            channel = connection.channel()
            topology.declare(channel)
            declared = channel.queue_declare("", exclusive=True, auto_delete=True)
            feed = _Feed(connection, channel, declared.method.queue)
            self._route_if_watched(feed)
            with self._lock:
                self._feed = feed
            self.connected.set()
            for method, props, body in channel.consume(
                feed.queue, auto_ack=True, inactivity_timeout=0.2
            ):
                if stop.is_set():
                    return
                if method is not None:
                    self._deliver(props.type, body)
                self._route_if_watched(feed)  # the last job watcher may have gone
        finally:
            with self._lock:
                self._feed = None
            self.connected.clear()
            if connection.is_open:
                connection.close()

    def _deliver(self, message_type: str | None, body: bytes) -> None:
        try:  # one event or a batch of them (services/common/events.py)
            envelopes = events.from_message(message_type, body)
        except events.EventDecodeError as error:
            log.warning("watch feed: skipping undecodable delivery: %s", error)
            return
        for envelope in envelopes:
            try:
                facts_of(envelope)
            except UnknownEventError as error:
                log.warning("watch feed: skipping undecodable event: %s", error)
                continue
            self.publish_event(envelope)
