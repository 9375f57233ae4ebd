"""The consumer's grouped acks against a real broker: what a worker did not settle stays queued."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pika
import pytest

from services.common import amqp, rabbitmq_management, topology
from services.processor import consumer as consumer_module
from services.processor.config import ProcessorConfig
from services.processor.consumer import Consumer
from services.processor.worker import Disposition, Incoming, Settle, Worker
from tools.testing.servers import RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")


def consumer_config(
    rabbitmq: RabbitMQServer, batch: int, *, concurrency: int, batch_wait_ms: int
) -> ProcessorConfig:
    """A consumer taking `batch` messages at most per batch; no database (the workers fake it)."""
    return ProcessorConfig(
        amqp_url=rabbitmq.info.amqp_url,
        postgres_dsn="postgresql://unused",
        prefetch=batch,
        concurrency=concurrency,
        batch_size=batch,
        batch_wait_ms=batch_wait_ms,
        lease_seconds=10,
        retry_base_ms=1000,
        retry_max_ms=60_000,
        http_host="127.0.0.1",
        http_port=0,
        shutdown_grace_seconds=5,
    )


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
    # One batch of all of them.
    config = consumer_config(rabbitmq, len(bodies), concurrency=1, batch_wait_ms=500)
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


class BatchRecordingWorker(Worker):
    """Acks everything; records the size of each batch it is handed and when (shared by all
    workers)."""

    def __init__(
        self, batches: list[tuple[int, float]], expected: int, done: threading.Event
    ) -> None:
        self.batches, self.expected, self.done = batches, expected, done

    def handle_batch(self, batch: Sequence[Incoming], settle: Settle) -> None:
        self.batches.append((len(batch), time.monotonic()))
        settle([(index, Disposition.ACK) for index in range(len(batch))])
        if sum(size for size, _ in self.batches) >= self.expected:
            self.done.set()

    def close(self) -> None:
        pass


def batches_of(
    rabbitmq: RabbitMQServer, config: ProcessorConfig, bodies: Sequence[bytes], gap_s: float
) -> list[tuple[int, float]]:
    """Publishes `bodies` `gap_s` apart to a running consumer: the batches its workers were
    handed, as (size, seconds after the first publish)."""
    batches: list[tuple[int, float]] = []
    done, stop = threading.Event(), threading.Event()
    consumer = Consumer(
        config, stop, make_worker=lambda _name: BatchRecordingWorker(batches, len(bodies), done)
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    connection = amqp.connect(rabbitmq.info.amqp_url, connection_name="consumer-test")
    try:
        assert consumer.connected.wait(30), "the consumer did not connect"
        channel = amqp.confirmed_channel(connection)
        first_published = time.monotonic()
        for body in bodies:
            channel.basic_publish(
                topology.JOBS_EXCHANGE, topology.WORK_ROUTING_KEY, body, pika.BasicProperties()
            )
            time.sleep(gap_s)
        assert done.wait(30), f"the consumer delivered only {batches} of {len(bodies)} messages"
    finally:
        connection.close()
        stop.set()
        thread.join(30)
    return [(size, at - first_published) for size, at in batches]


def test_idle_workers_do_not_split_a_trickle_into_slivers(rabbitmq: RabbitMQServer) -> None:
    # Four idle workers; eight messages arrive 30 ms apart, all within one batch wait. The first
    # comes after a quiet spell and is handed over at once; one worker gathers the seven that
    # stream in behind it into one batch (without the intake lock, idle workers took them one
    # by one as batches of their own).
    bodies = [f"job-{n}".encode() for n in range(8)]
    config = consumer_config(rabbitmq, len(bodies), concurrency=4, batch_wait_ms=2000)
    sizes = [size for size, _ in batches_of(rabbitmq, config, bodies, gap_s=0.03)]
    assert sizes == [1, 7]


def test_a_lone_delivery_is_not_held_for_the_batch_wait(rabbitmq: RabbitMQServer) -> None:
    # A quiet queue, a 5 s batch wait, one job: it is handed over at once, not after 5 s.
    config = consumer_config(rabbitmq, 10, concurrency=1, batch_wait_ms=5000)
    [(size, after)] = batches_of(rabbitmq, config, [b"job-1"], gap_s=0)
    assert size == 1
    assert after < 2.5, f"handed over {after:.1f} s after its publish"


def test_a_burst_after_a_quiet_spell_goes_as_one_batch_at_once(
    rabbitmq: RabbitMQServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five jobs published back to back onto a quiet queue, a 5 s batch wait: one batch, handed
    # over at once (the four behind the first are its burst, not a stream to wait for). The
    # burst gap is widened so that a loaded test machine cannot split the burst.
    monkeypatch.setattr(consumer_module, "BURST_GAP_S", 0.2)
    config = consumer_config(rabbitmq, 10, concurrency=1, batch_wait_ms=5000)
    bodies = [f"job-{n}".encode() for n in range(5)]
    [(size, after)] = batches_of(rabbitmq, config, bodies, gap_s=0)
    assert size == 5
    assert after < 2.5, f"handed over {after:.1f} s after the first publish"
