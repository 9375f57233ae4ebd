"""The broker's own floor: publish N persistent messages with windowed publisher confirms and
consume them with prefetch 1000, acking each, in this process (pika). No job system on top."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import pika
import pika.frame
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from tools.bench import stats

QUEUE = "bench.raw"
WINDOW = 1000  # unconfirmed publishes in flight
PREFETCH = 1000
BODY = b"x" * 64
PERSISTENT = BasicProperties(delivery_mode=2)


class RawError(RuntimeError):
    """The broker refused or the messages did not all arrive."""


@dataclass(frozen=True)
class RawResult(stats.Throughput):
    """mode: the raw broker round trip."""


class _Publisher:
    """SelectConnection publisher that keeps at most WINDOW messages unconfirmed."""

    def __init__(self, url: str, count: int) -> None:
        self.count = count
        self.sent = 0
        self.confirmed = 0
        self.nacked = 0
        self.error = ""
        self._outstanding: collections.deque[int] = collections.deque()
        self._channel: Channel | None = None
        self._connection: pika.SelectConnection = pika.SelectConnection(
            pika.URLParameters(url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_error,
            on_close_callback=self._on_close,
        )

    def run(self) -> None:
        self._connection.ioloop.start()
        if self.error:
            raise RawError(self.error)

    def _on_close(self, _connection: object, _reason: BaseException) -> None:
        self._connection.ioloop.stop()

    def _on_error(self, _connection: object, error: BaseException | str) -> None:
        self.error = f"cannot connect: {error}"
        self._connection.ioloop.stop()

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        self._channel = channel
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._pump())

    def _pump(self) -> None:
        assert self._channel is not None
        while self.sent < self.count and len(self._outstanding) < WINDOW:
            self._channel.basic_publish("", QUEUE, BODY, PERSISTENT)
            self.sent += 1
            self._outstanding.append(self.sent)

    def _on_confirm(self, frame: pika.frame.Method[Basic.Ack | Basic.Nack]) -> None:
        method = frame.method
        tag = method.delivery_tag
        if isinstance(method, Basic.Nack):
            self.nacked += 1
        if method.multiple:
            while self._outstanding and self._outstanding[0] <= tag:
                self._outstanding.popleft()
                self.confirmed += 1
        elif tag in self._outstanding:
            self._outstanding.remove(tag)
            self.confirmed += 1
        if self.confirmed == self.count:
            self._connection.close()
        else:
            self._pump()


def _consume(url: str, count: int, ready: threading.Event, done: list[float]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel: BlockingChannel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    received = 0

    def on_message(
        ch: BlockingChannel, method: Basic.Deliver, _props: BasicProperties, _body: bytes
    ) -> None:
        nonlocal received
        ch.basic_ack(method.delivery_tag)
        received += 1
        if received == count:
            done.append(time.time())
            ch.stop_consuming()

    channel.basic_consume(QUEUE, on_message)
    ready.set()
    try:
        channel.start_consuming()
    finally:
        connection.close()


def declare(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(QUEUE, durable=True)
    finally:
        connection.close()


def run(url: str, jobs: int, timeout: float) -> RawResult:
    declare(url)
    ready = threading.Event()
    done: list[float] = []
    consumer = threading.Thread(
        target=_consume, args=(url, jobs, ready, done), name="raw-consumer", daemon=True
    )
    consumer.start()
    if not ready.wait(30):
        raise RawError("consumer did not start within 30 s")
    publisher = _Publisher(url, jobs)
    began = time.time()
    publisher.run()
    submit_seconds = time.time() - began
    if publisher.nacked:
        raise RawError(f"the broker nacked {publisher.nacked} messages")
    consumer.join(timeout)
    if not done:
        raise RawError(f"raw {jobs}: not every message consumed after {timeout:.0f} s")
    return RawResult("raw amqp", jobs, submit_seconds, done[0] - began)
