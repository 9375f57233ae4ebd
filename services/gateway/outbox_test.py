"""The outbox against real PostgreSQL and RabbitMQ: an entry committed while the broker is away is
delivered by the relay once it is back, exactly the messages it held; a delivered entry is deleted;
the relay leaves fresh entries (still being published by their request) alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pytest

from services.common import amqp
from services.common import postgres as pg
from services.common.pg_pool import ConnectionPool
from services.gateway.outbox import Outbox, decode, encode
from services.gateway.publisher import BrokerUnavailableError, Message, Publisher
from services.jobstore import migrate
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_port
from tools.testing.waiting import wait_for

pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
postgres = server_fixture("postgres", PostgresServer, scope="module")


def test_encoding_keeps_every_property() -> None:
    messages = [
        Message(
            "observatory.jobs",
            "work",
            bytes(range(256)),
            "observatory.jobs.v1.Job",
            headers={"x-attempt": 2, "x-contract-version": "1"},
            priority=7,
            message_id="m-1",
            correlation_id="trace é",
        ),
        Message("observatory.control", "", b"job", "cancel", mandatory=False),
    ]
    assert decode(encode(messages)) == messages


@pytest.fixture
def pool(postgres: PostgresServer) -> Iterator[ConnectionPool]:
    pool = ConnectionPool(lambda: pg.connect(postgres.info.dsn, timeout=5), deadline_s=10)
    with pool.connection() as conn:
        migrate.migrate(conn)
        conn.execute("DELETE FROM outbox")
        conn.commit()
    yield pool
    pool.close()


@pytest.fixture
def queue(rabbitmq: RabbitMQServer) -> Iterator[tuple[str, pika.BlockingConnection]]:
    connection = amqp.connect(rabbitmq.info.amqp_url)
    name = f"outbox-test-{uuid.uuid4().hex[:8]}"
    connection.channel().queue_declare(name, durable=True)
    yield name, connection
    connection.close()


def received(connection: pika.BlockingConnection, queue: str) -> list[bytes]:
    channel = connection.channel()
    bodies: list[bytes] = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def commit_entry(outbox: Outbox, pool: ConnectionPool, messages: list[Message]) -> int:
    with pool.connection() as conn, conn.transaction():
        return outbox.record(conn, messages)


def entries(pool: ConnectionPool) -> list[int]:
    with pool.connection() as conn:
        ids = [int(row[0]) for row in conn.execute("SELECT id FROM outbox ORDER BY id")]
        conn.commit()
        return ids


def age(pool: ConnectionPool, seconds: int) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("UPDATE outbox SET created_at = now() - make_interval(secs => %s)", (seconds,))


def test_a_delivered_entry_is_deleted(
    rabbitmq: RabbitMQServer, pool: ConnectionPool, queue: tuple[str, pika.BlockingConnection]
) -> None:
    name, connection = queue
    publisher = Publisher(rabbitmq.info.amqp_url, timeout=5.0)
    outbox = Outbox(pool, publisher, grace_seconds=0)
    messages = [Message("", name, f"m{n}".encode(), "test") for n in range(3)]
    entry = commit_entry(outbox, pool, messages)
    assert outbox.deliver(entry, messages)
    assert received(connection, name) == [b"m0", b"m1", b"m2"]
    assert outbox.relay() == 0  # delivered, waiting for deletion: not sent again
    assert received(connection, name) == []
    outbox.delete_delivered()
    assert entries(pool) == []
    publisher.close()


def test_an_entry_the_broker_did_not_confirm_is_relayed_once_it_is_back(
    rabbitmq: RabbitMQServer, pool: ConnectionPool, queue: tuple[str, pika.BlockingConnection]
) -> None:
    name, connection = queue
    gone = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", timeout=1.0)
    stranded = Outbox(pool, gone, grace_seconds=0)
    messages = [Message("", name, f"job-{n}".encode(), "test") for n in range(250)]
    first = commit_entry(stranded, pool, messages[:200])
    second = commit_entry(stranded, pool, messages[200:])
    assert not stranded.deliver(first, messages[:200])  # committed, left for the relay
    with pytest.raises(BrokerUnavailableError):
        stranded.relay()  # the broker is still away: nothing is lost
    assert entries(pool) == [first, second]

    publisher = Publisher(rabbitmq.info.amqp_url, timeout=5.0)
    relay = Outbox(pool, publisher, grace_seconds=0)
    assert relay.relay() == 2
    assert received(connection, name) == [m.body for m in messages]
    assert entries(pool) == []
    assert relay.relay() == 0
    publisher.close()
    gone.close()


def test_the_relay_leaves_entries_younger_than_the_grace(
    rabbitmq: RabbitMQServer, pool: ConnectionPool, queue: tuple[str, pika.BlockingConnection]
) -> None:
    name, connection = queue
    publisher = Publisher(rabbitmq.info.amqp_url, timeout=5.0)
    outbox = Outbox(pool, publisher, grace_seconds=30)
    entry = commit_entry(outbox, pool, [Message("", name, b"in flight", "test")])
    assert outbox.relay() == 0
    assert entries(pool) == [entry]
    age(pool, 31)
    assert outbox.relay() == 1
    assert received(connection, name) == [b"in flight"]
    publisher.close()


def test_the_background_thread_deletes_and_relays(
    rabbitmq: RabbitMQServer, pool: ConnectionPool, queue: tuple[str, pika.BlockingConnection]
) -> None:
    name, connection = queue
    publisher = Publisher(rabbitmq.info.amqp_url, timeout=5.0)
    outbox = Outbox(pool, publisher, grace_seconds=0, relay_every_seconds=0.2).start()
    try:
        delivered = [Message("", name, b"delivered", "test")]
        assert outbox.deliver(commit_entry(outbox, pool, delivered), delivered)
        commit_entry(outbox, pool, [Message("", name, b"stranded", "test")])
        wait_for(
            lambda: entries(pool), what="the outbox to empty", until=lambda ids: not ids, timeout=20
        )
        assert sorted(received(connection, name)) == [b"delivered", b"stranded"]
    finally:
        outbox.stop()
        publisher.close()
