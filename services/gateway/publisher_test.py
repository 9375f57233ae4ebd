"""Concurrent publishes share confirm windows: each caller returns once its own messages are
confirmed, every message arrives once, and a broker that is gone fails every caller."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pika
import pytest

from services.common import amqp
from services.gateway.publisher import BrokerUnavailableError, Message, Publisher
from tools.testing.servers import RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_port

pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
CALLERS = 16


@pytest.fixture
def queue(rabbitmq: RabbitMQServer) -> Iterator[tuple[str, pika.BlockingConnection]]:
    connection = amqp.connect(rabbitmq.info.amqp_url)
    name = f"publisher-test-{uuid.uuid4().hex[:8]}"
    connection.channel().queue_declare(name, durable=True)
    yield name, connection
    connection.close()


def concurrently(publisher: Publisher, batches: list[list[Message]]) -> list[Exception | None]:
    outcomes: list[Exception | None] = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def call(n: int) -> None:
        start.wait()
        try:
            publisher.publish(batches[n])
        except Exception as error:  # recorded per caller, asserted below
            outcomes[n] = error

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_concurrent_callers_each_get_their_messages_confirmed_once(
    rabbitmq: RabbitMQServer, queue: tuple[str, pika.BlockingConnection]
) -> None:
    name, connection = queue
    publisher = Publisher(rabbitmq.info.amqp_url, timeout=10.0)
    batches = [
        [Message("", name, f"{caller}/{n}".encode(), "test") for n in range(3)]
        for caller in range(CALLERS)
    ]
    try:
        assert concurrently(publisher, batches) == [None] * CALLERS
    finally:
        publisher.close()
    # Every caller returned only after its confirms: all messages are in the queue already.
    channel = connection.channel()
    bodies = []
    while (got := channel.basic_get(name, auto_ack=True))[0] is not None:
        bodies.append(got[2].decode())
    assert sorted(bodies) == sorted(m.body.decode() for batch in batches for m in batch)


def test_with_the_broker_gone_every_concurrent_caller_fails() -> None:
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", timeout=1.0)
    batches = [[Message("", "anywhere", b"x", "test")] for _ in range(CALLERS)]
    try:
        outcomes = concurrently(publisher, batches)
    finally:
        publisher.close()
    assert all(isinstance(outcome, BrokerUnavailableError) for outcome in outcomes)
