"""Publishing a batch with one wait for all its publisher confirms (pipelined, not one by one).

pika's BlockingChannel in confirm mode waits for each message's confirm before sending the next:
a round trip plus the broker's disk flush per message (2-4 ms), so a batch of 500 would take
seconds. Here the batch is written to the asynchronous channel under the blocking one (pika's
`_impl`; pika is pinned in the lock) and the connection's I/O loop is run until every delivery tag
is confirmed, bounded by a timeout. Same guarantees: confirm mode, mandatory, nack and
unroutable are errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pika
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel


class ConfirmError(RuntimeError):
    """The broker nacked or returned a message (`refused`), or the channel closed or did not
    confirm in time (the connection is then in an unknown state)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ConfirmingChannel:
    def __init__(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, timeout: float
    ) -> None:
        self._connection = connection
        self._channel: Any = channel._impl  # pika internals: see the module docstring
        self._timeout = timeout
        self._last_tag = 0  # delivery tags count publishes on the channel, from 1
        self._unconfirmed: set[int] = set()
        self._refused: list[str] = []
        selected: list[bool] = []

        def on_selected(_frame: object) -> None:
            selected.append(True)
            self._wake()

        self._channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=on_selected)
        self._channel.add_on_return_callback(self._on_return)
        self._wait(lambda: bool(selected), "confirm mode")

    @property
    def is_open(self) -> bool:
        return bool(self._channel.is_open) and self._connection.is_open

    def publish(
        self,
        messages: Sequence[tuple[str, str, bytes, pika.BasicProperties, bool]],
    ) -> None:
        """Sends (exchange, routing key, body, properties, mandatory) messages, then waits once."""
        self._refused.clear()
        for exchange, routing_key, body, properties, mandatory in messages:
            self._channel.basic_publish(
                exchange, routing_key, body, properties=properties, mandatory=mandatory
            )
            self._last_tag += 1
            self._unconfirmed.add(self._last_tag)
        self._wait(lambda: not self._unconfirmed, f"confirms of {len(messages)} messages")
        if self._refused:
            raise ConfirmError(f"broker refused: {self._refused[:3]}", refused=True)

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not done():
            if not self._channel.is_open:
                raise ConfirmError(f"channel closed while waiting for {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfirmError(f"no {what} within {self._timeout:g}s")
            self._connection.process_data_events(time_limit=min(left, 0.1))

    def _on_confirm(self, frame: pika.frame.Method[Any]) -> None:
        method = frame.method
        tag = method.delivery_tag
        confirmed = {t for t in self._unconfirmed if t <= tag} if method.multiple else {tag}
        self._unconfirmed -= confirmed
        if isinstance(method, pika.spec.Basic.Nack):
            self._refused.append(f"nacked x{len(confirmed)}")
        if not self._unconfirmed:
            self._wake()

    def _wake(self) -> None:
        # process_data_events returns early only for events of the blocking layer; a no-op
        # callback is one, so the wait ends as soon as the last confirm is in.
        self._connection.add_callback_threadsafe(lambda: None)

    def _on_return(self, _channel: object, method: pika.spec.Basic.Return, *_: object) -> None:
        # mandatory and routed nowhere; its ack follows.
        self._refused.append(f"unroutable {method.exchange!r}/{method.routing_key!r}")
