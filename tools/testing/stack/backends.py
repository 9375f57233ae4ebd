"""The servers the services need, started together, and the environment that points at them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.testing.servers import MongoServer, PostgresServer, RabbitMQServer, RedisServer
from tools.testing.servers.fixtures import serve
from tools.testing.servers.rabbitmq import RabbitMQInfo

serving = contextlib.contextmanager(serve)


def management_url(info: RabbitMQInfo) -> str:
    """The management API URL with its credentials, as RABBITMQ_MANAGEMENT_URL expects it."""
    return f"http://{info.username}:{info.password}@{info.host}:{info.management_port}"


@dataclass(frozen=True)
class Backends:
    rabbitmq: RabbitMQServer
    postgres: PostgresServer
    mongo: MongoServer
    redis: RedisServer

    def env(self) -> dict[str, str]:
        """AMQP_URL, POSTGRES_DSN, MONGO_URL, REDIS_URL and RABBITMQ_MANAGEMENT_URL."""
        return {
            "AMQP_URL": self.rabbitmq.info.amqp_url,
            "POSTGRES_DSN": self.postgres.info.dsn,
            "MONGO_URL": self.mongo.info.url,
            "REDIS_URL": self.redis.info.url,
            "RABBITMQ_MANAGEMENT_URL": management_url(self.rabbitmq.info),
        }


@contextlib.contextmanager
def running_backends(root: Path, *, durable: bool = False) -> Iterator[Backends]:
    """RabbitMQ, PostgreSQL, MongoDB-wire and Redis with state under `root`; all stopped after.

    `durable`: the stores keep what they acknowledge as the local stack's do (PostgreSQL with
    fsync and synchronous commit, Redis's append-only file, MongoDB-wire on a file) instead of
    the throwaway settings that save tests seconds."""
    with (
        serving(RabbitMQServer(root / "rabbitmq")) as rabbitmq,
        serving(
            PostgresServer(root / "postgres", data_dir=root / "pgdata" if durable else None)
        ) as postgres,
        serving(MongoServer(root / "mongo", persist=durable)) as mongo,
        serving(RedisServer(root / "redis", persist=durable)) as redis,
    ):
        yield Backends(rabbitmq, postgres, mongo, redis)
