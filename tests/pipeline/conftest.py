"""The whole pipeline on real servers: RabbitMQ, PostgreSQL, Redis, MongoDB-wire, and the four
services as real processes (two processors). Shared by the module; each test uses its own jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tools.testing.servers import MongoServer, PostgresServer, RabbitMQServer, RedisServer
from tools.testing.stack.backends import running_backends
from tools.testing.stack.services import ServiceSet

pytest_plugins = ["tools.testing.servers.pytest_plugin"]


@dataclass
class Pipeline(ServiceSet):
    rabbitmq: RabbitMQServer
    postgres: PostgresServer
    mongo: MongoServer
    redis: RedisServer


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("pipeline")
    with running_backends(root) as servers:
        backends = {
            **servers.env(),
            # Short retry delays keep the retry tests quick; the shape is what is checked.
            "PROCESSOR_RETRY_BASE_MS": "200",
            "PROCESSOR_LEASE_SECONDS": "3",
        }
        pipeline = Pipeline(
            root, backends, servers.rabbitmq, servers.postgres, servers.mongo, servers.redis
        )
        try:
            for name in ("gateway", "metrics_engine", "read_model"):
                pipeline.start_service(name, name)
            pipeline.start_processor()
            pipeline.start_processor()
            yield pipeline
        except BaseException:
            print(pipeline.log_reports())
            raise
        finally:
            for process in pipeline.services.values():
                process.stop()
