"""The RabbitMQ management HTTP API: what the broker says about itself and its queues."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from services.common.http_json import get_json


@dataclass(frozen=True)
class QueueStats:
    name: str
    vhost: str
    durable: bool
    messages: int
    consumers: int


def overview(base_url: str, *, auth: tuple[str, str], timeout: float = 10.0) -> dict[str, Any]:
    """GET /api/overview: node name, versions, totals."""
    result: dict[str, Any] = get_json(f"{base_url}/api/overview", auth=auth, timeout=timeout)
    return result


def queue(
    base_url: str, name: str, *, auth: tuple[str, str], vhost: str = "/", timeout: float = 10.0
) -> QueueStats:
    """GET /api/queues/<vhost>/<name>. Counts lag the broker by the statistics interval."""
    path = "/".join(urllib.parse.quote(part, safe="") for part in (vhost, name))
    data = get_json(f"{base_url}/api/queues/{path}", auth=auth, timeout=timeout)
    return QueueStats(
        name=data["name"],
        vhost=data["vhost"],
        durable=bool(data["durable"]),
        messages=int(data.get("messages", 0)),
        consumers=int(data.get("consumers", 0)),
    )


def bound_queues(
    base_url: str, exchange: str, *, auth: tuple[str, str], vhost: str = "/", timeout: float = 10.0
) -> set[str]:
    """GET /api/exchanges/<vhost>/<exchange>/bindings/source: the queues it routes to."""
    path = "/".join(urllib.parse.quote(part, safe="") for part in (vhost, exchange))
    data = get_json(f"{base_url}/api/exchanges/{path}/bindings/source", auth=auth, timeout=timeout)
    return {b["destination"] for b in data if b["destination_type"] == "queue"}
