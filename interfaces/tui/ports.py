"""Loopback ports the local stack listens on, with their env overrides.

One table shared by the prerequisite check and, later, the launcher, so both agree on what
each service binds and how to move it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PortSpec:
    """One port of the local stack."""

    key: str  # upper-case id, also the middle of the env override name
    default: int
    service: str  # who wants the port, in words a user recognises

    @property
    def env_var(self) -> str:
        return f"OBSERVATORY_{self.key}_PORT"


LOCAL_PORTS: tuple[PortSpec, ...] = (
    PortSpec("RABBITMQ_AMQP", 5672, "RabbitMQ AMQP"),
    PortSpec("RABBITMQ_MANAGEMENT", 15672, "RabbitMQ management UI/API"),
    PortSpec("RABBITMQ_PROMETHEUS", 15692, "RabbitMQ prometheus plugin"),
    PortSpec("POSTGRES", 5432, "PostgreSQL"),
    PortSpec("REDIS", 6379, "Redis"),
    PortSpec("MONGO", 27017, "MongoDB-wire server (nx-27017)"),
    PortSpec("PROMETHEUS", 9090, "Prometheus"),
    PortSpec("ALERTMANAGER", 9093, "Alertmanager"),
    PortSpec("GATEWAY_GRPC", 50051, "gateway gRPC"),
    PortSpec("GATEWAY_HTTP", 8080, "gateway HTTP"),
    PortSpec("READ_MODEL_GRPC", 50052, "read model gRPC"),
    PortSpec("READ_MODEL_HTTP", 8081, "read model HTTP"),
)


def resolve_port(spec: PortSpec, environ: Mapping[str, str]) -> int:
    """The port to use for `spec`: its env override if set, else the default.

    Raises ValueError with a user-facing message when the override is not a port number.
    """
    raw = environ.get(spec.env_var, "").strip()
    if not raw:
        return spec.default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{spec.env_var}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{spec.env_var}={port} is outside 1-65535")
    return port
