"""The observatory's own services as throwaway processes, for end-to-end tests.

Each is the real program (the py_binary under Bazel, `python -m services.<name>.main` otherwise)
configured by environment variables to use the test's servers, managed like the servers in
tools/testing/servers: started in its own session, ready when /readyz answers 200, stopped with
SIGTERM then SIGKILL, log tail on failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, free_ports, http_status
from tools.testing.servers.programs import child_env, python_path


@dataclass(frozen=True)
class ServiceInfo(ServerInfo):
    """`port` is the HTTP port (/healthz, /readyz, /metrics); `grpc_port` 0 when it has none."""

    grpc_port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def grpc_target(self) -> str:
        return f"{HOST}:{self.grpc_port}"


# service -> (env var of its HTTP port, env var of its gRPC port or "")
_PORT_VARS = {
    "gateway": ("GATEWAY_HTTP_PORT", "GATEWAY_GRPC_PORT"),
    "processor": ("PROCESSOR_HTTP_PORT", ""),
    "metrics_engine": ("METRICS_ENGINE_HTTP_PORT", ""),
    "read_model": ("READ_MODEL_HTTP_PORT", "READ_MODEL_GRPC_PORT"),
}


def _runfiles_roots() -> list[Path]:
    roots = []
    if "TEST_SRCDIR" in os.environ:
        roots.append(Path(os.environ["TEST_SRCDIR"]) / os.environ["TEST_WORKSPACE"])
    # Under `bazel run` this file sits in the binary's runfiles tree (not resolved: the file
    # itself is a symlink into the source tree, where there are no built binaries).
    roots.append(Path(os.path.abspath(__file__)).parents[3])
    return roots


def program(service: str) -> list[str]:
    """The command that runs a service: its `:main` py_binary from the runfiles under Bazel."""
    for root in _runfiles_roots():
        binary = root / "services" / service / "main"
        if binary.is_file():
            return [str(binary)]
    return [sys.executable, "-m", f"services.{service}.main"]


class ServiceProcess(Server[ServiceInfo]):
    """One service; `backends` are the AMQP_URL / POSTGRES_DSN / ... settings it needs."""

    ready_timeout: ClassVar[float] = 30.0

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        service: str,
        backends: Mapping[str, str],
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
    ) -> None:
        """`http_port`/`grpc_port` fixed instead of free ones (both, if the service has gRPC)."""
        self.name = service  # type: ignore[misc]  # per instance: one class for every service
        super().__init__(state_dir)
        self.service = service
        self.backends = dict(backends)
        self._ports = (http_port, grpc_port)
        self.fixed_ports = http_port is not None

    def _launch(self) -> ServiceInfo:
        http_var, grpc_var = _PORT_VARS[self.service]
        free_http, free_grpc = free_ports(2)
        http_port = self._ports[0] or free_http
        grpc_port = self._ports[1] or free_grpc
        env = {**self.backends, http_var: str(http_port)}
        if grpc_var:
            env[grpc_var] = str(grpc_port)
        argv = program(self.service)
        # Outside Bazel the child needs this interpreter's imports; a py_binary brings its own.
        extra = {"PYTHONPATH": python_path()} if argv[0] == sys.executable else {}
        self._spawn(argv, env=child_env({**env, **extra}))
        return ServiceInfo(
            host=HOST,
            port=http_port,
            url=f"http://{HOST}:{http_port}",
            grpc_port=grpc_port if grpc_var else 0,
            env=env,
        )

    def _ready(self, info: ServiceInfo) -> bool:
        return http_status(f"{info.url}/readyz") == 200


@dataclass
class ServiceSet:
    """The services of one end-to-end test, started over the same backends (`env`), by key
    ("gateway", "processor-2"); stopping them is the test's fixture's job."""

    state_dir: Path
    env: dict[str, str]
    services: dict[str, ServiceProcess] = field(default_factory=dict, kw_only=True)
    processors: list[ServiceProcess] = field(default_factory=list, kw_only=True)

    def start_service(self, service: str, key: str) -> ServiceProcess:
        process = ServiceProcess(self.state_dir / key, service, self.env)
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

    @property
    def metrics_engine(self) -> ServiceProcess:
        return self.services["metrics_engine"]

    def log_reports(self, lines: int = 40) -> str:
        return "\n".join(process.log_report(lines) for process in self.services.values())
