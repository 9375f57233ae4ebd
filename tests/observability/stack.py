"""The pipeline as real processes on real servers, for the observability integration tests:
RabbitMQ (with its prometheus plugin), PostgreSQL, MongoDB-wire, Redis and the four services."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.testing.servers import RabbitMQServer
from tools.testing.stack.backends import running_backends
from tools.testing.stack.services import ServiceProcess

SERVICES = ("gateway", "processor", "metrics_engine", "read_model")


@dataclass
class Stack:
    rabbitmq: RabbitMQServer
    services: dict[str, ServiceProcess]

    @property
    def rabbitmq_per_object_url(self) -> str:
        """The broker's per-queue metrics (what infra/prometheus/prometheus.yml scrapes)."""
        return self.rabbitmq.info.prometheus_url.removesuffix("/metrics") + "/metrics/per-object"

    def url(self, service: str) -> str:
        return self.services[service].info.url


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    with running_backends(root) as servers:
        backends = {
            **servers.env(),
            # Short retry delays: retried and dead-lettered jobs finish within seconds.
            "PROCESSOR_RETRY_BASE_MS": "100",
        }
        services: dict[str, ServiceProcess] = {}
        try:
            for name in SERVICES:
                services[name] = ServiceProcess(root / name, name, backends)
                services[name].start()
            yield Stack(servers.rabbitmq, services)
        except BaseException:
            print("\n".join(s.log_report(40) for s in services.values()))
            raise
        finally:
            for service in services.values():
                service.stop()
