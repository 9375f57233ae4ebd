"""Redis connections (redis-py), answering str rather than bytes."""

from __future__ import annotations

import redis


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client for a redis:// URL; it connects lazily, on the first command."""
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
    )
