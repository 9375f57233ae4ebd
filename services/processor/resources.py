"""A worker's own PostgreSQL connection and publishing channel, each retried with backoff.

pika connections are not thread-safe and psycopg connections serve one transaction at a time,
so every worker thread owns one of each. While a backend is down the worker holds its message
(unacked) and retries: with a bounded prefetch, consumption stops by itself and nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from services.common import amqp, postgres, topology
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


class Publisher:
    """Confirmed, persistent publishing on the worker's own connection."""

    def __init__(self, url: str, stop: threading.Event, name: str) -> None:
        self._url = url
        self._stop = stop
        self._name = name
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
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
        """Publishes (declaring the retry queue for `retry_delay_ms` first) and waits for the
        broker's confirm; on a connection failure, reconnects and publishes again."""
        delays = backoff()
        while True:
            try:
                channel = self._open()
                if retry_delay_ms is not None and retry_delay_ms not in self._retry_queues:
                    topology.declare_retry_queue(channel, retry_delay_ms)
                    self._retry_queues.add(retry_delay_ms)
                channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
                return
            except (pika.exceptions.AMQPError, OSError) as error:
                log.warning("broker unavailable for publishing, retrying: %r", error)
                self.close()
                if self._stop.wait(next(delays)):
                    raise StoppingError("broker unavailable at shutdown") from error

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = amqp.connect(self._url, connection_name=self._name)
            self._channel = amqp.confirmed_channel(self._connection)
            topology.declare(self._channel)
            self._retry_queues.clear()
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
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
