"""The whole pipeline for a fault test: the four backends and the four services as real processes.

One stack per test module (a fault that freezes or restarts a server must not leak into another
module's test). Processors get a short lease and retry base so a killed worker's jobs come back
within seconds.

A restartable stack (`restartable=True`) runs its backends the way the local stack's launcher
does (tools/launcher/servers.py): fixed ports, PostgreSQL on a durable data directory, Redis
with its append-only file, nx-27017 on a file database, RabbitMQ with a fixed node name. A
server can then be stopped and a new one started on the same ports with the same data
(`Stack.replace`), which is what a real restart is.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.testing.servers import MongoServer, PostgresServer, RabbitMQServer, RedisServer, Server
from tools.testing.servers.net import free_ports
from tools.testing.servers.rabbitmq import RabbitMQPorts
from tools.testing.stack.backends import Backends, running_backends, serving
from tools.testing.stack.services import ServiceSet

# Short enough that an abandoned attempt (SIGKILLed processor) is retried within seconds.
FAULT_SETTINGS = {
    "PROCESSOR_LEASE_SECONDS": "3",
    "PROCESSOR_RETRY_BASE_MS": "200",
    "PROCESSOR_RETRY_MAX_MS": "2000",
}


@dataclass
class Stack(ServiceSet):
    rabbitmq: RabbitMQServer
    postgres: PostgresServer
    mongo: MongoServer
    redis: RedisServer
    # New servers on the same ports and data (a restartable stack only).
    factories: BackendFactories | None = None
    # Servers started by `replace`: stopped with the stack.
    replacements: list[Server[Any]] = field(default_factory=list)

    def backend(self, name: str) -> Server[Any]:
        server: Server[Any] = getattr(self, name)
        return server

    def replace(self, name: str) -> Server[Any]:
        """Starts a new `name` server on the same ports and data; the old one must be stopped."""
        assert self.factories is not None, "this stack's backends are not restartable"
        make: Callable[[], Server[Any]] = getattr(self.factories, name)
        server = make()
        self.replacements.append(server)
        setattr(self, name, server)
        server.start()
        return server


@dataclass(frozen=True)
class BackendFactories:
    """Backends configured like the launcher's: each call makes a server on the same ports and
    data as the previous one, so a new one takes over where a stopped one left off."""

    rabbitmq: Callable[[], RabbitMQServer]
    postgres: Callable[[], PostgresServer]
    mongo: Callable[[], MongoServer]
    redis: Callable[[], RedisServer]

    @classmethod
    def under(cls, root: Path) -> BackendFactories:
        amqp, management, prometheus, dist, epmd, postgres, redis, mongo = free_ports(8)
        ports = RabbitMQPorts(amqp, management, prometheus, dist, epmd)
        node = f"rabbit-faults-{secrets.token_hex(4)}@localhost"
        data_dir = root / "postgres" / "data"
        return cls(
            rabbitmq=lambda: RabbitMQServer(root / "rabbitmq", ports=ports, node=node),
            postgres=lambda: PostgresServer(root / "postgres", port=postgres, data_dir=data_dir),
            mongo=lambda: MongoServer(root / "mongo", port=mongo, persist=True),
            redis=lambda: RedisServer(root / "redis", port=redis, persist=True),
        )


@contextlib.contextmanager
def _restartable_backends(factories: BackendFactories) -> Iterator[Backends]:
    with (
        serving(factories.rabbitmq()) as rabbitmq,
        serving(factories.postgres()) as postgres,
        serving(factories.mongo()) as mongo,
        serving(factories.redis()) as redis,
    ):
        yield Backends(rabbitmq, postgres, mongo, redis)


@contextlib.contextmanager
def running_stack(
    root: Path,
    *,
    processors: int = 2,
    settings: Mapping[str, str] | None = None,
    restartable: bool = False,
) -> Iterator[Stack]:
    """Backends and services under `root`; every process stopped afterwards, logs on failure."""
    factories = BackendFactories.under(root) if restartable else None
    backends = running_backends(root) if factories is None else _restartable_backends(factories)
    with backends as servers:
        env = {**servers.env(), **FAULT_SETTINGS, **(settings or {})}
        stack = Stack(
            root,
            env,
            servers.rabbitmq,
            servers.postgres,
            servers.mongo,
            servers.redis,
            factories=factories,
        )
        try:
            for service in ("gateway", "metrics_engine", "read_model"):
                stack.start_service(service, service)
            for _ in range(processors):
                stack.start_processor()
            yield stack
        except BaseException:
            print(stack.log_reports())
            raise
        finally:
            for process in stack.services.values():
                process.stop()
            for server in stack.replacements:
                server.stop()
