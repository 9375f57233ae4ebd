"""The gateway's settings, read from the environment at start-up (bad value -> ConfigError)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from services.common.config import Env


@dataclass(frozen=True)
class Limits:
    """What a request may carry; bigger requests are refused before any work is done."""

    max_payload_bytes: int = 64 * 1024
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 500  # gateway.proto: at most 500 specs per SubmitJobs call
    default_max_attempts: int = 3
    default_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class GatewayConfig:
    amqp_url: str
    postgres_dsn: str
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8080
    limits: Limits = Limits()
    # Connect/confirm bound for the broker and connect bound for PostgreSQL: a dead backend
    # turns into a quick 503, never a hang.
    backend_timeout_seconds: float = 3.0
    instance_id: str = f"{socket.gethostname()}/{os.getpid()}"

    @classmethod
    def from_env(cls, env: Env) -> GatewayConfig:
        # Only the two backends the gateway uses (Backends.from_env would demand all five
        # URLs outside local mode).
        return cls(
            amqp_url=env.amqp_url(),
            postgres_dsn=env.postgres_dsn(),
            host=env.text("GATEWAY_HOST", "127.0.0.1"),
            grpc_port=env.port("GATEWAY_GRPC_PORT", 50051),
            http_port=env.port("GATEWAY_HTTP_PORT", 8080),
            limits=Limits(
                max_payload_bytes=env.integer(
                    "GATEWAY_MAX_PAYLOAD_BYTES", 64 * 1024, minimum=2, maximum=16 * 1024 * 1024
                ),
                max_body_bytes=env.integer(
                    "GATEWAY_MAX_BODY_BYTES",
                    4 * 1024 * 1024,
                    minimum=1024,
                    maximum=64 * 1024 * 1024,
                ),
            ),
            backend_timeout_seconds=env.number(
                "GATEWAY_BACKEND_TIMEOUT_SECONDS", 3.0, minimum=0.1, maximum=60
            ),
        )
