"""The consumer's grouped acks against a real broker: what a worker did not settle stays queued."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pika
import pytest

from services.common import amqp, rabbitmq_management, topology
from services.processor.config import ProcessorConfig
from services.processor.consumer import Consumer
from services.processor.worker import Disposition, Incoming, Settle, Worker
from tools.testing.servers import RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")


class SettlingWorker(Worker):
    """Settles messages by body: b"ack..." acked, b"reject..." rejected, anything else never
    (as if its effects were not confirmed); settles twice per batch, like a batch's waves."""

    def __init__(self) -> None:  # no database or publisher: this worker only settles
        self.seen: list[bytes] = []
        self.done = threading.Event()

    def handle_batch(self, batch: Sequence[Incoming], settle: Settle) -> None:
        self.seen += [item.body for item in batch]
        settled = [
            (index, Disposition.REJECT if item.body.startswith(b"reject") else Disposition.ACK)
            for index, item in enumerate(batch)
            if item.body.startswith((b"ack", b"reject"))
        ]
        half = len(settled) // 2
        settle(settled[half:])  # the later deliveries first: acked behind unsettled ones
        settle(settled[:half])
        self.done.set()

    def close(self) -> None:
        pass


def test_grouped_acks_leave_exactly_the_unsettled_deliveries_queued(
    rabbitmq: RabbitMQServer,
) -> None:
    # The second settle call acks the first three with one multiple ack, below keep-1.
    bodies = [b"ack-1", b"ack-2", b"ack-3", b"reject-1", b"ack-4", b"keep-1", b"ack-5", b"keep-2"]
    connection = amqp.connect(rabbitmq.info.amqp_url, connection_name="consumer-test")
    channel = amqp.confirmed_channel(connection)
    topology.declare(channel)
    for body in bodies:
        channel.basic_publish(
            topology.JOBS_EXCHANGE, topology.WORK_ROUTING_KEY, body, pika.BasicProperties()
        )
    config = ProcessorConfig(
        amqp_url=rabbitmq.info.amqp_url,
        postgres_dsn="postgresql://unused",
        prefetch=len(bodies),
        concurrency=1,
        batch_size=len(bodies),
        batch_wait_ms=500,  # one batch of all of them
        lease_seconds=10,
        retry_base_ms=1000,
        retry_max_ms=60_000,
        http_host="127.0.0.1",
        http_port=0,
        shutdown_grace_seconds=5,
    )
    worker, stop = SettlingWorker(), threading.Event()
    consumer = Consumer(config, stop, make_worker=lambda _name: worker)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert worker.done.wait(30), "the consumer delivered nothing"
        assert sorted(worker.seen) == sorted(bodies)

        auth = (rabbitmq.info.username, rabbitmq.info.password)
        wait_for(  # ready + unacked; the management API's counts lag a few seconds
            lambda: (
                rabbitmq_management.queue(
                    rabbitmq.info.management_url, topology.WORK_QUEUE, auth=auth
                ).messages
            ),
            until=lambda messages: messages == 2,
            what="every settled delivery acked while the consumer runs",
            timeout=60,
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    # Consumer gone: the unsettled deliveries are back in the queue; the rejected one is not.
    left = []
    while (got := channel.basic_get(topology.WORK_QUEUE, auto_ack=True))[0] is not None:
        left.append(got[2])
    connection.close()
    assert sorted(left) == [b"keep-1", b"keep-2"]
