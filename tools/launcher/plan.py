"""The local stack's components, their dependencies and ports, and the order they start in.

Pure: no process is started here, so the order and the restart policy are unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BACKENDS = ("rabbitmq", "postgres", "redis", "mongo")
_BACKEND_NEEDS: Mapping[str, tuple[str, ...]] = {
    # What each service's config reads (services/<svc>/config.py).
    "gateway": ("rabbitmq", "postgres"),
    "processor": ("rabbitmq", "postgres"),
    "metrics_engine": ("rabbitmq", "mongo", "redis"),
    "read_model": BACKENDS,
}

RESTART_BASE_S = 1.0
RESTART_CAP_S = 30.0
# A service that stayed healthy this long starts its backoff again from the base delay.
STABLE_AFTER_S = 60.0


@dataclass(frozen=True)
class Component:
    name: str  # "processor-2"
    kind: str  # "server" (a backend or monitor) or "service" (one of ours)
    program: str  # server name ("postgres") or service package ("processor")
    needs: tuple[str, ...]
    ports: tuple[int, ...]

    @property
    def restartable(self) -> bool:
        """Services restart after a crash. A crashed backend is shown FAILED instead: silently
        restarting a database hides the disk, data or port problem that took it down."""
        return self.kind == "service"


def components(ports: Mapping[str, int], processors: int) -> tuple[Component, ...]:
    """Every component of a local stack with `processors` replicas, in start order."""
    if processors < 1:
        raise ValueError(f"--processors: expected at least 1, got {processors}")
    p = ports
    servers = (
        Component(
            "rabbitmq",
            "server",
            "rabbitmq",
            (),
            (
                p["RABBITMQ_AMQP"],
                p["RABBITMQ_MANAGEMENT"],
                p["RABBITMQ_PROMETHEUS"],
                p["RABBITMQ_EPMD"],
                p["RABBITMQ_DIST"],
            ),
        ),
        Component("postgres", "server", "postgres", (), (p["POSTGRES"],)),
        Component("redis", "server", "redis", (), (p["REDIS"],)),
        Component("mongo", "server", "mongo", (), (p["MONGO"],)),
    )
    services = (
        Component(
            "read_model",
            "service",
            "read_model",
            _BACKEND_NEEDS["read_model"],
            (p["READ_MODEL_HTTP"], p["READ_MODEL_GRPC"]),
        ),
        Component(
            "metrics_engine",
            "service",
            "metrics_engine",
            _BACKEND_NEEDS["metrics_engine"],
            (p["METRICS_ENGINE_HTTP"],),
        ),
        *(
            Component(
                f"processor-{i}",
                "service",
                "processor",
                _BACKEND_NEEDS["processor"],
                (p["PROCESSOR_HTTP"] + i - 1,),
            )
            for i in range(1, processors + 1)
        ),
        Component(
            "gateway",
            "service",
            "gateway",
            _BACKEND_NEEDS["gateway"],
            (p["GATEWAY_HTTP"], p["GATEWAY_GRPC"]),
        ),
    )
    service_names = tuple(s.name for s in services)
    monitors = (
        # Alertmanager posts to the read model; Prometheus scrapes every service.
        Component("alertmanager", "server", "alertmanager", ("read_model",), (p["ALERTMANAGER"],)),
        Component(
            "prometheus",
            "server",
            "prometheus",
            ("alertmanager", "rabbitmq", *service_names),
            (p["PROMETHEUS"],),
        ),
    )
    return servers + services + monitors


def waves(parts: Sequence[Component]) -> list[list[Component]]:
    """Start order: each wave needs only earlier waves, so a wave's members start together."""
    done: set[str] = set()
    remaining = list(parts)
    known = {c.name for c in parts}
    order: list[list[Component]] = []
    while remaining:
        wave = [c for c in remaining if all(n in done or n not in known for n in c.needs)]
        if not wave:
            names = ", ".join(c.name for c in remaining)
            raise ValueError(f"dependency cycle among: {names}")
        order.append(wave)
        done |= {c.name for c in wave}
        remaining = [c for c in remaining if c.name not in done]
    return order


def restart_delay(consecutive_crashes: int) -> float:
    """Seconds before restarting a service after its n-th crash in a row (1-based)."""
    if consecutive_crashes < 1:
        raise ValueError("consecutive_crashes starts at 1")
    return min(RESTART_CAP_S, RESTART_BASE_S * 2.0 ** (consecutive_crashes - 1))
