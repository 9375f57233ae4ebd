"""Confirmed publishing to RabbitMQ from many request threads through one channel.

One `Publisher` owns one connection and one confirm-mode channel, guarded by a lock: a call
publishes a whole batch of messages (a job's work message and its event, or those of a batch of
jobs) with one wait for all their confirms (see confirms.py), and returns only once the broker
has confirmed every one of them, or raises
`BrokerUnavailableError`. A lost connection is reopened on the next call, no sooner than the
capped, jittered backoff allows, so a dead broker costs each request one quick failure rather
than a connect timeout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions

from services.common import amqp, lifecycle, topology
from services.common.config import redact
from services.gateway.confirms import ConfirmError, ConfirmingChannel

log = logging.getLogger(__name__)


class BrokerUnavailableError(RuntimeError):
    """The broker could not be reached or did not confirm a message."""


@dataclass(frozen=True)
class Message:
    exchange: str
    routing_key: str
    body: bytes
    type: str
    headers: Mapping[str, object] = field(default_factory=dict)
    priority: int | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    # Unroutable is an error for work and events; a cancel broadcast with no processor
    # listening is fine (the flag in PostgreSQL stays).
    mandatory: bool = True

    def properties(self) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/x-protobuf",
            type=self.type,
            headers=dict(self.headers) or None,
            priority=self.priority,
            message_id=self.message_id,
            correlation_id=self.correlation_id or None,
            delivery_mode=pika.DeliveryMode.Persistent,
        )


_FAILURES = (
    pika.exceptions.AMQPError,  # connection, channel, nack, unroutable
    OSError,
)


_Outgoing = tuple[str, str, bytes, pika.BasicProperties, bool]


@dataclass
class _Request:
    """One caller's messages; `done` and `failure` are set by the window that published them
    (under the channel lock, which the caller takes after it)."""

    batch: list[_Outgoing]
    done: bool = False
    failure: BrokerUnavailableError | None = None


class Publisher:
    def __init__(self, url: str, *, timeout: float, name: str = "gateway") -> None:
        self._url = url
        self._timeout = timeout
        self._name = name
        self._lock = threading.Lock()  # the channel: one confirm window at a time
        self._pending_lock = threading.Lock()
        self._pending: list[_Request] = []  # batches waiting for the next window
        self._connection: pika.BlockingConnection | None = None
        self._channel: ConfirmingChannel | None = None
        self._delays: Iterator[float] = lifecycle.backoff(initial=0.2, cap=5.0)
        self._next_attempt = 0.0

    def publish(self, messages: Sequence[Message]) -> None:
        """Publishes all `messages` and waits for their confirms, or BrokerUnavailableError.

        Concurrent calls share confirm windows: whoever holds the channel publishes every batch
        waiting by then with one confirm wait (group commit), so single submits from many
        clients cost one broker round trip per window rather than one each. Each caller returns
        only once its own messages are confirmed; a failed window fails all its callers.
        """
        request = _Request(
            [(m.exchange, m.routing_key, m.body, m.properties(), m.mandatory) for m in messages]
        )
        with self._pending_lock:
            self._pending.append(request)
        with self._lock:
            if not request.done:  # no earlier window took it: publish everything waiting
                with self._pending_lock:
                    window, self._pending = self._pending, []
                failure: BrokerUnavailableError | None = None
                try:
                    self._publish_window([m for r in window for m in r.batch])
                except BrokerUnavailableError as error:
                    failure = error
                for waiting in window:
                    waiting.failure, waiting.done = failure, True
        if request.failure is not None:
            raise BrokerUnavailableError(str(request.failure)) from request.failure

    def _publish_window(self, batch: list[_Outgoing]) -> None:
        for attempt in (1, 2):
            channel = self._ensure_channel()
            try:
                channel.publish(batch)
                return
            except ConfirmError as error:
                if error.refused:
                    raise BrokerUnavailableError(str(error)) from error
                failure: Exception = error
            except _FAILURES as error:
                failure = error
            self._drop(f"publish failed: {failure!r}")
            # A connection gone stale while idle gets one fresh retry (consumers deduplicate
            # a message sent twice); a second failure means the broker is really gone.
            if attempt == 2:
                raise BrokerUnavailableError(f"publish failed: {failure!r}") from failure
            self._next_attempt = 0.0

    def ensure_connected(self) -> None:
        """Returns at once while the channel is open; else connects (or BrokerUnavailableError,
        quickly while the reconnect backoff runs)."""
        channel = self._channel
        if channel is not None and channel.is_open:
            return
        with self._lock:
            self._ensure_channel()

    def ready(self) -> bool:
        """Whether the broker is connected now (connecting if the backoff allows)."""
        with self._lock:
            try:
                self._ensure_channel()
                assert self._connection is not None
                self._connection.process_data_events(0)  # also answers heartbeats
            except (BrokerUnavailableError, *_FAILURES):
                self._drop("readiness probe failed")
                return False
            return True

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                with contextlib.suppress(*_FAILURES):
                    self._connection.close()
            self._connection = self._channel = None

    def _ensure_channel(self) -> ConfirmingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        now = time.monotonic()
        if now < self._next_attempt:
            raise BrokerUnavailableError("broker unreachable; reconnecting after a backoff")
        try:
            connection = amqp.connect(self._url, connection_name=self._name, timeout=self._timeout)
            blocking = connection.channel()
            topology.declare(blocking)
            channel = ConfirmingChannel(connection, blocking, self._timeout)
        except (ConfirmError, *_FAILURES) as error:
            self._next_attempt = time.monotonic() + next(self._delays)
            log.warning("broker %s unreachable: %r", redact(self._url), error)
            raise BrokerUnavailableError(f"broker unreachable: {error!r}") from error
        self._delays = lifecycle.backoff(initial=0.2, cap=5.0)
        self._next_attempt = 0.0
        self._connection, self._channel = connection, channel
        log.info("connected to broker %s", redact(self._url))
        return channel

    def _drop(self, why: str) -> None:
        log.warning("dropping broker connection: %s", why)
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_FAILURES):
                connection.close()
