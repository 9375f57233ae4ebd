"""`RemoteStack`: an existing deployment (e.g. Kubernetes), only probed, never started."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.launcher.api import (
    ComponentState,
    ComponentStatus,
    DownReport,
    Endpoints,
    LaunchError,
    Progress,
    ProgressCallback,
    StackStatus,
)

_PROBE_TIMEOUT_S = 3.0


def probe(target: str, timeout: float = _PROBE_TIMEOUT_S) -> str:
    """ "serving" if `target` (host:port) answers the gRPC health check as SERVING, else why not."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        name = code.name if code is not None else "error"
        return f"unreachable ({name})"
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return "serving"
    return f"not serving ({health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)})"


class RemoteStack:
    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    def status(self) -> StackStatus:
        targets = {
            "gateway": self.endpoints.gateway_grpc,
            "read_model": self.endpoints.read_model_grpc,
        }
        statuses = tuple(
            ComponentStatus(name, ComponentState.EXTERNAL, detail=f"{target}: {probe(target)}")
            for name, target in targets.items()
        )
        return StackStatus(
            mode="remote",
            running=all(s.detail.endswith(": serving") for s in statuses),
            components=statuses,
            endpoints=self.endpoints,
        )

    def up(self, progress: ProgressCallback | None = None) -> StackStatus:
        """Starts nothing: checks that the deployment answers."""
        began = time.monotonic()
        status = self.status()
        for component in status.components:
            if progress is not None:
                elapsed = time.monotonic() - began
                progress(Progress(component.name, component.state, elapsed, component.detail))
            if not component.detail.endswith(": serving"):
                raise LaunchError(component.name, component.detail)
        return status

    def down(self, progress: ProgressCallback | None = None, *, purge: bool = False) -> DownReport:
        """Stops nothing: the deployment is not ours."""
        return DownReport(stopped=(), already_gone=())
