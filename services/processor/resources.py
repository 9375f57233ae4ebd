"""A worker's own PostgreSQL connection and publishing channel, each retried with backoff.

pika connections are not thread-safe and psycopg connections serve one transaction at a time,
so every worker thread owns one of each. While a backend is down the worker holds its message
(unacked) and retries: with a bounded prefetch, consumption stops by itself and nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from services.common import amqp, postgres, topology
from services.common.confirms import ConfirmError, ConfirmingChannel
from services.common.lifecycle import backoff
from services.jobstore import store

T = TypeVar("T")
log = logging.getLogger(__name__)


class StoppingError(Exception):
    """A backend is down and the process is shutting down: leave the message unacked."""


class Database:
    def __init__(self, dsn: str, stop: threading.Event, name: str) -> None:
        self._dsn = dsn
        self._stop = stop
        self._name = name
        self._conn: store.Conn | None = None

    def transaction(self, work: Callable[[store.Conn], T]) -> T:
        """Runs `work` in one transaction; on a connection failure, reconnects and reruns it."""
        delays = backoff()
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = postgres.connect(self._dsn, application_name=self._name)
                with self._conn.transaction():
                    return work(self._conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                log.warning("postgresql unavailable, retrying: %s", error)
                self.close()
                if self._stop.wait(next(delays)):
                    raise StoppingError("postgresql unavailable at shutdown") from error

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class Outgoing:
    """One message to publish; `retry_delay_ms` names the retry queue to declare first."""

    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    retry_delay_ms: int | None = None


class Publisher:
    """Confirmed, persistent publishing on the worker's own connection: a batch of messages is
    written at once and confirmed with one wait (services/common/confirms.py)."""

    def __init__(
        self, url: str, stop: threading.Event, name: str, *, confirm_timeout: float = 30.0
    ) -> None:
        self._url = url
        self._stop = stop
        self._name = name
        self._confirm_timeout = confirm_timeout
        self._connection: pika.BlockingConnection | None = None
        self._blocking: BlockingChannel | None = None
        self._channel: ConfirmingChannel | None = None
        self._retry_queues: set[int] = set()

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        retry_delay_ms: int | None = None,
    ) -> None:
        self.publish_all([Outgoing(exchange, routing_key, body, properties, retry_delay_ms)])

    def publish_all(self, messages: Sequence[Outgoing]) -> None:
        """Publishes every message (declaring the retry queues they need first) and waits for all
        the broker's confirms; on a failure, reconnects and publishes the whole batch again
        (consumers deduplicate by message id, and redelayed work is checked against the row)."""
        if not messages:
            return
        delays = backoff()
        while True:
            try:
                channel = self._open()
                assert self._blocking is not None
                for delay_ms in {m.retry_delay_ms for m in messages} - {None}:
                    assert delay_ms is not None
                    if delay_ms not in self._retry_queues:
                        topology.declare_retry_queue(self._blocking, delay_ms)
                        self._retry_queues.add(delay_ms)
                channel.publish(
                    [(m.exchange, m.routing_key, m.body, m.properties, True) for m in messages]
                )
                return
            except (ConfirmError, pika.exceptions.AMQPError, OSError) as error:
                log.warning("broker unavailable for publishing, retrying: %r", error)
                self.close()
                if self._stop.wait(next(delays)):
                    raise StoppingError("broker unavailable at shutdown") from error

    def _open(self) -> ConfirmingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = amqp.connect(self._url, connection_name=self._name)
            self._blocking = self._connection.channel()
            topology.declare(self._blocking)
            self._channel = ConfirmingChannel(
                self._connection, self._blocking, self._confirm_timeout
            )
            self._retry_queues.clear()
        return self._channel

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._blocking = self._channel = None
        if connection is not None and connection.is_open:
            # Already broken: nothing left to release.
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()


def properties(
    *,
    headers: Mapping[str, object] | None = None,
    message_id: str | None = None,
    message_type: str | None = None,
    priority: int | None = None,
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/x-protobuf",
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=dict(headers) if headers else None,
        message_id=message_id,
        type=message_type,
        priority=priority,
    )
