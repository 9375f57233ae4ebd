"""Loopback ports the local stack listens on, with their env overrides, in one table.

The launcher binds them and the TUI's prerequisite check probes them, so both agree on what
each component binds and how to move it (`OBSERVATORY_<KEY>_PORT`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


# The ports users and the TUI connect to.
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

# Ports the stack also binds, internal to it. The Erlang ones are not the usual 4369/25672, so
# a system RabbitMQ's epmd does not collide with ours. Processor replica i (1-based) listens
# on PROCESSOR_HTTP + i - 1.
INTERNAL_PORTS: tuple[PortSpec, ...] = (
    PortSpec("RABBITMQ_EPMD", 24369, "RabbitMQ epmd (Erlang port mapper)"),
    PortSpec("RABBITMQ_DIST", 25673, "RabbitMQ Erlang distribution"),
    PortSpec("METRICS_ENGINE_HTTP", 8083, "metrics engine HTTP"),
    PortSpec("PROCESSOR_HTTP", 8090, "processor HTTP (replica 1; replica i adds i-1)"),
)

ALL_PORTS: tuple[PortSpec, ...] = LOCAL_PORTS + INTERNAL_PORTS
SPECS: Mapping[str, PortSpec] = {spec.key: spec for spec in ALL_PORTS}


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


@dataclass(frozen=True)
class PortUse:
    """One concrete port a component binds, and the setting that moves it."""

    port: int
    what: str  # "PostgreSQL", "processor-2 HTTP"
    env_var: str


def resolve_ports(environ: Mapping[str, str]) -> dict[str, int]:
    """Every port key -> port, overrides applied. Raises ValueError on a bad override."""
    return {spec.key: resolve_port(spec, environ) for spec in ALL_PORTS}


def port_uses(ports: Mapping[str, int], processors: int) -> list[PortUse]:
    """Every port the stack will bind with `processors` replicas."""
    uses = [
        PortUse(ports[spec.key], spec.service, spec.env_var)
        for spec in ALL_PORTS
        if spec.key != "PROCESSOR_HTTP"
    ]
    base = SPECS["PROCESSOR_HTTP"]
    uses += [
        PortUse(ports[base.key] + i, f"processor-{i + 1} HTTP", base.env_var)
        for i in range(processors)
    ]
    return uses


def duplicate_ports(uses: Iterable[PortUse]) -> list[str]:
    """Messages for ports two components would both bind (after overrides)."""
    seen: dict[int, PortUse] = {}
    problems = []
    for use in uses:
        if use.port in seen:
            other = seen[use.port]
            problems.append(
                f"port {use.port} is configured for both {other.what} ({other.env_var}) "
                f"and {use.what} ({use.env_var}): set one of them to another port"
            )
        else:
            seen[use.port] = use
    return problems


Holder = tuple[int, str]  # pid, program name ("" when unknown)


def conflict_message(use: PortUse, holders: Iterable[Holder]) -> str:
    """What a user reads when a port of the stack is taken by something not ours."""
    found = sorted(holders)
    if found:
        who = ", ".join(f"pid {pid} ({name})" if name else f"pid {pid}" for pid, name in found)
    else:
        who = "another process (not visible to this user)"
    return (
        f"port {use.port} ({use.what}) is in use by {who}; stop it or set {use.env_var}=<free port>"
    )


def conflicts(
    uses: Iterable[PortUse],
    in_use: Callable[[int], bool],
    holders_of: Callable[[int], list[Holder]],
) -> list[str]:
    """A message for each port that `in_use` says is taken; `holders_of` names the holders."""
    return [conflict_message(use, holders_of(use.port)) for use in uses if in_use(use.port)]
