"""RabbitMQ over AMQP 0-9-1 (pika, blocking): connections, confirmed publishing, consuming.

Publishing goes through a channel in confirm mode with `mandatory` set, so `publish_confirmed`
returns only once the broker has taken responsibility for the message, and raises when the
message was routed nowhere (pika's UnroutableError) or refused (NackError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pika
from pika.adapters.blocking_connection import BlockingChannel


@dataclass(frozen=True)
class Delivery:
    body: bytes
    routing_key: str
    exchange: str
    headers: Mapping[str, object] = field(default_factory=dict)
    content_type: str | None = None
    redelivered: bool = False


def connect(
    url: str, *, connection_name: str | None = None, timeout: float = 10.0
) -> pika.BlockingConnection:
    """Opens a blocking connection from an amqp:// URL (vhost "/" is `%2F` in the URL)."""
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    if connection_name is not None:
        parameters.client_properties = {"connection_name": connection_name}
    return pika.BlockingConnection(parameters)


def confirmed_channel(connection: pika.BlockingConnection) -> BlockingChannel:
    """A channel in publisher-confirm mode."""
    channel = connection.channel()
    channel.confirm_delivery()
    return channel


def publish_confirmed(
    channel: BlockingChannel,
    *,
    exchange: str,
    routing_key: str,
    body: bytes,
    headers: Mapping[str, object] | None = None,
    content_type: str | None = None,
    persistent: bool = True,
) -> None:
    """Publishes and waits for the broker's confirm (`channel` from `confirmed_channel`)."""
    properties = pika.BasicProperties(
        content_type=content_type,
        headers=dict(headers) if headers else None,
        delivery_mode=pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient,
    )
    channel.basic_publish(exchange, routing_key, body, properties=properties, mandatory=True)


def consume_one(channel: BlockingChannel, queue: str, *, timeout: float = 10.0) -> Delivery | None:
    """Takes the next message from `queue` (waiting up to `timeout` s), acks it, returns it.

    Other messages the broker pushed to this consumer meanwhile are requeued (redelivered=True).
    """
    try:
        for method, properties, body in channel.consume(queue, inactivity_timeout=timeout):
            if method is None:  # inactivity timeout
                return None
            channel.basic_ack(method.delivery_tag)
            return Delivery(
                body=body,
                routing_key=method.routing_key,
                exchange=method.exchange,
                headers=dict(properties.headers or {}),
                content_type=properties.content_type,
                redelivered=method.redelivered,
            )
    finally:
        channel.cancel()
    return None
