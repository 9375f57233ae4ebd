"""Read model settings from the environment (see services/common/config.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import Backends, Env


@dataclass(frozen=True)
class ReadModelConfig:
    backends: Backends
    host: str = "127.0.0.1"
    grpc_port: int = 50052
    http_port: int = 8081
    stats_interval_s: float = 1.0  # Watch's default stats period
    max_watchers: int = 24  # each Watch holds a server thread

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReadModelConfig:
        env = Env(environ)
        return cls(
            backends=Backends.from_env(env),
            host=env.text("READ_MODEL_HOST", "127.0.0.1"),
            grpc_port=env.port("READ_MODEL_GRPC_PORT", 50052),
            http_port=env.port("READ_MODEL_HTTP_PORT", 8081),
            stats_interval_s=env.number(
                "READ_MODEL_WATCH_INTERVAL_S", 1.0, minimum=0.25, maximum=60
            ),
            max_watchers=env.integer("READ_MODEL_MAX_WATCHERS", 24, minimum=1, maximum=256),
        )
