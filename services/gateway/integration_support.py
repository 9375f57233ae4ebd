"""What the gateway's integration tests share: the backends behind TCP proxies (so a test can cut
one off and bring it back), a gateway configured over them, and reading a test queue empty."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from services.gateway.config import GatewayConfig, Limits
from services.gateway.tcp_proxy import TcpProxy
from tools.testing.servers import PostgresServer, RabbitMQServer

Delivery = tuple[pika.BasicProperties, bytes]


def proxied(url: str, proxy: TcpProxy, port: int) -> str:
    return url.replace(f":{port}/", f":{proxy.port}/")


@contextlib.contextmanager
def backend_proxies(
    rabbitmq: RabbitMQServer, postgres: PostgresServer
) -> Iterator[dict[str, TcpProxy]]:
    """{"amqp": ..., "pg": ...}, open for the duration."""
    both = {"amqp": TcpProxy(rabbitmq.info.port), "pg": TcpProxy(postgres.info.port)}
    for proxy in both.values():
        proxy.open()
    try:
        yield both
    finally:
        for proxy in both.values():
            proxy.close()


def gateway_config(
    rabbitmq: RabbitMQServer,
    postgres: PostgresServer,
    proxies: dict[str, TcpProxy],
    **overrides: Any,
) -> GatewayConfig:
    """A gateway on ephemeral ports reaching both backends through `proxies`."""
    settings: dict[str, Any] = {
        "amqp_url": proxied(rabbitmq.info.amqp_url, proxies["amqp"], rabbitmq.info.port),
        "postgres_dsn": proxied(postgres.info.dsn, proxies["pg"], postgres.info.port),
        "grpc_port": 0,
        "http_port": 0,
        "limits": Limits(max_payload_bytes=1024, max_body_bytes=64 * 1024),
        "backend_timeout_seconds": 2.0,
    }
    return GatewayConfig(**(settings | overrides))


def drain(channel: BlockingChannel, queue: str) -> list[Delivery]:
    """Every message waiting in `queue`, acked."""
    messages: list[Delivery] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((properties, body))
