"""Metrics engine settings from the environment (see services/common/config.py).

The batching settings apply to each of the engine's two consumers (event store and live
aggregates) on its own: each has up to `prefetch` deliveries in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.aggregates.store import COMPLETED_JOB_TTL_S
from services.common.config import Env


@dataclass(frozen=True)
class MetricsEngineConfig:
    amqp_url: str
    mongo_url: str
    redis_url: str
    http_host: str = "127.0.0.1"
    http_port: int = 8083
    prefetch: int = 200  # unacked deliveries in flight per consumer; also its largest batch
    batch_wait_s: float = 0.025  # how long a partial batch waits for more deliveries
    batch_events: int = 1000  # a batch of deliveries is stored once it holds this many events
    # How long a completed job's aggregates state, and so the dedupe of its events, is kept:
    # Redis holds this window's completed jobs (about 400 bytes each).
    dedupe_window_s: int = COMPLETED_JOB_TTL_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsEngineConfig:
        env = Env(environ)
        return cls(
            amqp_url=env.amqp_url(),
            mongo_url=env.mongo_url(),
            redis_url=env.redis_url(),
            http_host=env.text("METRICS_ENGINE_HOST", "127.0.0.1"),
            http_port=env.port("METRICS_ENGINE_HTTP_PORT", 8083),
            prefetch=env.integer("METRICS_ENGINE_PREFETCH", 200, minimum=1, maximum=10_000),
            batch_wait_s=env.number("METRICS_ENGINE_BATCH_WAIT_S", 0.025, minimum=0, maximum=5),
            batch_events=env.integer(
                "METRICS_ENGINE_BATCH_EVENTS", 1000, minimum=1, maximum=100_000
            ),
            dedupe_window_s=env.integer(
                "METRICS_ENGINE_DEDUPE_WINDOW_S",
                COMPLETED_JOB_TTL_S,
                minimum=60,
                maximum=30 * 24 * 3600,  # 30 days
            ),
        )
