"""gRPC server bootstrap: every server of the project has reflection, health and size limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

# Request and response size limit (bytes): a batch of jobs fits, an accident does not.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class GrpcServer:
    """A started server; `set_serving(False)` flips the health status (readiness)."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health_servicer: health.HealthServicer,
        service_names: Sequence[str],
    ) -> None:
        self.server = server
        self.port = port
        self._health = health_servicer
        self._service_names = service_names

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._service_names):
            self._health.set(name, status)

    def stop(self, grace_seconds: float) -> None:
        """Stops taking calls and lets running ones finish for up to `grace_seconds`."""
        self.set_serving(False)
        self.server.stop(grace_seconds).wait()


def serve(
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    *,
    host: str,
    port: int,
    max_workers: int = 16,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> GrpcServer:
    """Starts a server on host:port (0 picks a free port) with `register`'s servicers.

    `service_names` are the full names (`observatory.gateway.v1.JobService`) that reflection and
    health report, so `grpcurl list` and `grpcurl ... grpc.health.v1.Health/Check` work.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (in use?)")
    server.start()
    started = GrpcServer(server, bound, health_servicer, service_names)
    started.set_serving(True)
    return started
