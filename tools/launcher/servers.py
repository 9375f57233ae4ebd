"""Each component as a server object of tools/testing/servers (or tools/testing/stack), on the
stack's fixed ports, with its data and log in the component's state directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.launcher import monitoring
from tools.launcher.plan import Component
from tools.launcher.ports import HOST
from tools.testing.servers import (
    AlertmanagerServer,
    MongoServer,
    PostgresServer,
    PrometheusServer,
    RabbitMQPorts,
    RabbitMQServer,
    RedisServer,
    Server,
)
from tools.testing.stack.services import ServiceProcess

READY_TIMEOUT_S = 180.0
# Fixed, so the broker finds its definitions and durable messages again after a restart.
RABBITMQ_NODE = "observatory@localhost"


def service_env(ports: Mapping[str, int]) -> dict[str, str]:
    """Where the services find the backends (the variables services/common/config.py reads)."""
    return {
        "OBSERVATORY_MODE": "local",
        "AMQP_URL": f"amqp://guest:guest@{HOST}:{ports['RABBITMQ_AMQP']}/%2F",
        "POSTGRES_DSN": f"postgresql://postgres@{HOST}:{ports['POSTGRES']}/postgres",
        "REDIS_URL": f"redis://{HOST}:{ports['REDIS']}/0",
        "MONGO_URL": f"mongodb://{HOST}:{ports['MONGO']}/",
        "RABBITMQ_MANAGEMENT_URL": f"http://guest:guest@{HOST}:{ports['RABBITMQ_MANAGEMENT']}",
    }


class _LocalPrometheus(PrometheusServer):
    def __init__(self, state_dir: Path, *, port: int, config: dict[str, object]) -> None:
        super().__init__(state_dir, port=port)
        self._local_config = config

    def _config(self, port: int) -> dict[str, object]:
        return self._local_config


class _LocalAlertmanager(AlertmanagerServer):
    def __init__(self, state_dir: Path, *, port: int, config_text: str) -> None:
        super().__init__(state_dir, port=port)
        self._text = config_text

    def _config_text(self, port: int) -> str:
        return self._text


def make_server(
    component: Component, state_dir: Path, ports: Mapping[str, int], processors: int
) -> Server[Any]:
    """A fresh (not started) server object for `component`; one per start attempt."""
    if component.kind == "service":
        server = _service(component, state_dir, ports)
    else:
        server = _backend(component, state_dir, ports, processors)
    # The test defaults (15-60 s) assume an idle machine; a user's laptop may be busy.
    server.ready_timeout = max(server.ready_timeout, READY_TIMEOUT_S)  # type: ignore[misc]
    return server


def _service(component: Component, state_dir: Path, p: Mapping[str, int]) -> Server[Any]:
    # Component ports of a service: HTTP first, then gRPC if it has one.
    grpc_port = component.ports[1] if len(component.ports) > 1 else None
    return ServiceProcess(
        state_dir,
        component.program,
        service_env(p),
        http_port=component.ports[0],
        grpc_port=grpc_port,
    )


def _backend(
    component: Component, state_dir: Path, p: Mapping[str, int], processors: int
) -> Server[Any]:
    match component.program:
        case "rabbitmq":
            fixed = RabbitMQPorts(
                amqp=p["RABBITMQ_AMQP"],
                management=p["RABBITMQ_MANAGEMENT"],
                prometheus=p["RABBITMQ_PROMETHEUS"],
                dist=p["RABBITMQ_DIST"],
                epmd=p["RABBITMQ_EPMD"],
            )
            return RabbitMQServer(state_dir, ports=fixed, node=RABBITMQ_NODE)
        case "postgres":
            return PostgresServer(state_dir, port=p["POSTGRES"], data_dir=state_dir / "data")
        case "redis":
            return RedisServer(state_dir, port=p["REDIS"], persist=True)
        case "mongo":
            return MongoServer(state_dir, port=p["MONGO"], persist=True)
        case "alertmanager":
            text = monitoring.alertmanager_config(
                monitoring.alertmanager_template(), p["READ_MODEL_HTTP"]
            )
            return _LocalAlertmanager(state_dir, port=p["ALERTMANAGER"], config_text=text)
        case "prometheus":
            config = monitoring.prometheus_config(p, processors)
            return _LocalPrometheus(state_dir, port=p["PROMETHEUS"], config=config)
    raise ValueError(f"unknown component program {component.program!r}")
