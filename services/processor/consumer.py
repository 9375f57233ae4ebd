"""Consuming the work queue: one connection thread (consume + ack), N worker threads.

pika's BlockingConnection is not thread-safe, so only the connection thread touches the
consuming channel; workers hand acks back with `add_callback_threadsafe`. Deliveries carry the
session they came from: after a reconnect, acks for the old channel are dropped (the broker
redelivers those messages, which the delivery rules make safe). Acks are grouped (`acks.py`):
one `multiple=True` ack covers every settled delivery below the oldest unsettled one.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from services.common import amqp, topology
from services.common.lifecycle import backoff
from services.processor.acks import Unsettled
from services.processor.cancels import CancelRegistry, cancelled_job_id
from services.processor.config import ProcessorConfig
from services.processor.resources import StoppingError
from services.processor.worker import Disposition, Incoming, Worker

log = logging.getLogger(__name__)

# Deliveries of one burst (one publish of several jobs) reach the queue this close together;
# after a quiet spell a batch takes them with it, then goes.
BURST_GAP_S = 0.002


@dataclass(frozen=True)
class Delivery:
    session: int
    connection: pika.BlockingConnection
    channel: BlockingChannel
    tag: int
    body: bytes
    headers: dict[str, object] | None
    unsettled: Unsettled  # the tags of `channel` not yet acked (used on the connection thread)
    arrived: float  # time.monotonic() when the connection thread received it


class Consumer:
    def __init__(
        self,
        config: ProcessorConfig,
        stop: threading.Event,
        make_worker: Callable[[str], Worker] | None = None,
    ) -> None:
        self._config = config
        self._stop = stop
        self.cancels = CancelRegistry()
        self._make_worker = make_worker or (lambda name: Worker(config, stop, self.cancels, name))
        self._deliveries: queue.Queue[Delivery] = queue.Queue()
        self._session = 0
        self._busy = 0
        self._busy_lock = threading.Lock()
        # One idle worker gathers a batch at a time: idle workers all waiting on the queue would
        # split each burst into slivers (a batch each), and a batch costs two transactions and
        # two confirm waits however few jobs it holds.
        self._intake = threading.Lock()
        self._last_arrival = -math.inf  # of the newest delivery taken (under _intake)
        self.connected = threading.Event()

    def run(self) -> None:
        """Consumes until `stop` is set, reconnecting with backoff; then drains and returns."""
        threads = [
            threading.Thread(target=self._work, args=(f"w{n}",), name=f"worker-{n}", daemon=True)
            for n in range(self._config.concurrency)
        ]
        for thread in threads:
            thread.start()
        delays = backoff()
        while not self._stop.is_set():
            try:
                self._consume()
                delays = backoff()
            except (pika.exceptions.AMQPError, OSError) as error:
                self.connected.clear()
                log.warning("broker connection lost, reconnecting: %r", error)
                self._stop.wait(next(delays))
        for thread in threads:
            thread.join(timeout=1)

    def _consume(self) -> None:
        self._session += 1
        connection = amqp.connect(self._config.amqp_url, connection_name="processor consumer")
        try:
            channel = connection.channel()
            topology.declare(channel)
            channel.basic_qos(prefetch_count=self._config.prefetch)
            control = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(control, topology.CONTROL_EXCHANGE)
            channel.basic_consume(control, self._on_control, auto_ack=True)
            session = self._session
            unsettled = Unsettled()

            def on_work(
                ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
            ) -> None:
                tag = method.delivery_tag
                assert tag is not None
                unsettled.delivered(tag)
                arrived = time.monotonic()
                self._deliveries.put(
                    Delivery(session, connection, ch, tag, body, props.headers, unsettled, arrived)
                )

            tag = channel.basic_consume(topology.WORK_QUEUE, on_work)
            self.connected.set()
            log.info("consuming %s", topology.WORK_QUEUE)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.2)
            self._drain(connection, channel, tag)
        finally:
            self.connected.clear()
            if connection.is_open:
                connection.close()

    def _drain(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, tag: str
    ) -> None:
        """Graceful stop: no new deliveries; running jobs get the grace period to finish."""
        channel.basic_cancel(tag)
        deadline = time.monotonic() + self._config.shutdown_grace_seconds
        while time.monotonic() < deadline and (self._busy or not self._deliveries.empty()):
            connection.process_data_events(time_limit=0.1)
        if self._busy:
            log.warning(
                "shutting down with %d jobs still running; they will be redelivered", self._busy
            )

    def _on_control(
        self, _ch: BlockingChannel, _method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        job_id = cancelled_job_id(body, props.headers)
        if job_id is not None and self.cancels.cancel(job_id):
            log.info("cancel broadcast: stopping job %s", job_id)

    def _work(self, name: str) -> None:
        worker = self._make_worker(name)
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    return
                if not batch:
                    continue
                with self._busy_lock:
                    self._busy += 1
                try:
                    worker.handle_batch(
                        [Incoming(d.body, d.headers) for d in batch], partial(self._settle, batch)
                    )
                except StoppingError:
                    pass  # left unacked on purpose
                except Exception:
                    log.exception("unexpected error; unsettled messages left for redelivery")
                finally:
                    with self._busy_lock:
                        self._busy -= 1
        finally:
            worker.close()

    def _take_batch(self) -> list[Delivery] | None:
        """Up to batch_size deliveries (one worker at a time): waits for one, then takes the rest
        of its burst, and while deliveries are streaming in (this one came within batch_wait_ms
        of the one before) waits up to batch_wait_ms for more. The first burst after a quiet
        spell is not held back: batching pays under load, and a lone job should not wait for
        company. None once stopping; deliveries of a lost connection are dropped (redelivered)."""
        with self._intake:
            try:
                first = self._deliveries.get(timeout=0.2)
            except queue.Empty:
                return None if self._stop.is_set() else []
            batch = [first]
            wait_s = self._config.batch_wait_ms / 1000
            streaming = first.arrived - self._last_arrival < wait_s
            deadline = time.monotonic() + wait_s
            while len(batch) < self._config.batch_size:
                left = max(deadline - time.monotonic(), 0)
                try:
                    batch.append(
                        self._deliveries.get(timeout=left if streaming else min(left, BURST_GAP_S))
                    )
                except queue.Empty:
                    break
            self._last_arrival = batch[-1].arrived
        # Not started before shutdown, or from a lost connection: the broker redelivers.
        if self._stop.is_set():
            return []
        return [d for d in batch if d.session == self._session]

    @staticmethod
    def _settle(batch: Sequence[Delivery], settled: Sequence[tuple[int, Disposition]]) -> None:
        """Acks (or rejects) deliveries of `batch` by index, in one callback on the connection
        thread (the only one allowed to use the channel), with as few frames as `acks.py` says."""
        if not settled:
            return
        first = batch[settled[0][0]]
        acked = [batch[i].tag for i, disposition in settled if disposition is Disposition.ACK]
        rejected = [
            batch[i].tag for i, disposition in settled if disposition is not Disposition.ACK
        ]

        def settle() -> None:
            if not first.channel.is_open:
                return  # a lost channel: the broker redelivers its unacked messages
            plan = first.unsettled.settle(acked, rejected)
            # The asynchronous channel under the blocking one (as services/common/confirms.py):
            # BlockingChannel.basic_ack flushes the socket once per call; these frames go out
            # together on the connection thread's next I/O loop turn.
            channel: Any = first.channel._impl
            for tag in plan.rejects:
                channel.basic_reject(tag, requeue=False)
            if plan.ack_up_to is not None:
                channel.basic_ack(plan.ack_up_to, multiple=True)
            for tag in plan.acks:
                channel.basic_ack(tag)

        try:
            first.connection.add_callback_threadsafe(settle)
        except (pika.exceptions.AMQPError, OSError) as error:
            log.warning("connection gone before the ack; the broker will redeliver: %r", error)
