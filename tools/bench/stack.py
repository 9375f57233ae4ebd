"""The local stack the benchmark drives: the real backing servers and the four services as
processes (tools/testing/stack, the same programs the launcher runs), with K processors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tools.testing.stack.backends import Backends, running_backends
from tools.testing.stack.services import ServiceProcess

SERVICES = ("gateway", "metrics_engine", "read_model")


@dataclass(frozen=True)
class Stack:
    backends: Backends
    services: Mapping[str, ServiceProcess]  # "gateway", ..., "processor-1".."processor-K"

    @property
    def gateway_target(self) -> str:
        return self.services["gateway"].info.grpc_target

    @property
    def read_model_target(self) -> str:
        return self.services["read_model"].info.grpc_target

    @property
    def amqp_url(self) -> str:
        return self.backends.rabbitmq.info.amqp_url

    @property
    def postgres_dsn(self) -> str:
        return self.backends.postgres.info.dsn

    def pids(self) -> dict[str, int]:
        """Component name -> root pid, for CPU accounting; processors are summed as one row."""
        roots = {name: process.pid for name, process in self.services.items()}
        roots.update(
            rabbitmq=self.backends.rabbitmq.pid,
            postgres=self.backends.postgres.pid,
            mongo=self.backends.mongo.pid,
            redis=self.backends.redis.pid,
        )
        return roots

    def log_reports(self) -> str:
        return "\n".join(process.log_report(40) for process in self.services.values())


@contextlib.contextmanager
def running_stack(
    root: Path, processors: int, extra_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Servers, the three services and `processors` processors; all stopped after."""
    with running_backends(root, durable=True) as backends:
        env = {**backends.env(), **(extra_env or {})}
        started: dict[str, ServiceProcess] = {}
        try:
            names = [*SERVICES, *(f"processor-{i}" for i in range(1, processors + 1))]
            for name in names:
                service = "processor" if name.startswith("processor-") else name
                process = ServiceProcess(root / name, service, env)
                started[name] = process
                process.start()
            yield Stack(backends, started)
        except BaseException:
            print("\n".join(p.log_report(40) for p in started.values()))
            raise
        finally:
            for process in started.values():
                process.stop()
