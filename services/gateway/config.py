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
class GroupLimits:
    """How concurrent submits are grouped into one commit (group_commit.py): a trade of latency
    for throughput (see the README)."""

    # Groups in their transaction at once (a committed group publishes outside this limit, so
    # its confirm wait overlaps the next group's commit). More: one slow commit stalls fewer
    # submits, but groups are smaller (more transactions, more CPU per job).
    max_writers: int = 1
    # Jobs per group; a single request bigger than this is still written, alone.
    max_jobs: int = 500

    def __post_init__(self) -> None:
        if self.max_writers < 1:
            raise ValueError(f"max_writers must be at least 1, got {self.max_writers}")
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self.max_jobs}")


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
    # Group commit of concurrent submits (group_commit.py): latency traded for throughput.
    groups: GroupLimits = GroupLimits()

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
            groups=GroupLimits(
                max_writers=env.integer("GATEWAY_GROUP_COMMIT_WRITERS", 1, minimum=1, maximum=16),
                max_jobs=env.integer("GATEWAY_GROUP_COMMIT_MAX_JOBS", 500, minimum=1, maximum=5000),
            ),
        )
