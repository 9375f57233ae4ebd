"""The whole pipeline on real servers: RabbitMQ, PostgreSQL, Redis, MongoDB-wire, and the four
services as real processes (two processors). Shared by the module; each test uses its own jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.testing.servers import MongoServer, PostgresServer, RabbitMQServer, RedisServer
from tools.testing.stack.backends import running_backends
from tools.testing.stack.services import ServiceProcess

pytest_plugins = ["tools.testing.servers.pytest_plugin"]


@dataclass
class Pipeline:
    state_dir: Path
    backends: dict[str, str]
    rabbitmq: RabbitMQServer
    postgres: PostgresServer
    mongo: MongoServer
    redis: RedisServer
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    processors: list[ServiceProcess] = field(default_factory=list)

    def start_service(self, name: str, key: str) -> ServiceProcess:
        process = ServiceProcess(self.state_dir / key, name, self.backends)
        self.services[key] = process
        process.start()
        return process

    def start_processor(self) -> ServiceProcess:
        process = self.start_service("processor", f"processor-{len(self.processors) + 1}")
        self.processors.append(process)
        return process

    @property
    def gateway(self) -> ServiceProcess:
        return self.services["gateway"]

    @property
    def read_model(self) -> ServiceProcess:
        return self.services["read_model"]

    def log_reports(self) -> str:
        return "\n".join(s.log_report(40) for s in self.services.values())


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
