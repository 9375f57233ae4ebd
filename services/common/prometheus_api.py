"""The Prometheus HTTP API: instant queries and scrape targets."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from services.common.http_json import get_json


class PrometheusError(RuntimeError):
    """Prometheus answered, but not with what was asked for."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class Target:
    labels: dict[str, str]
    scrape_url: str
    health: str  # "up", "down" or "unknown" (not scraped yet)
    last_error: str


def _data(base_url: str, path: str, timeout: float) -> Any:
    reply = get_json(f"{base_url}{path}", timeout=timeout)
    if reply.get("status") != "success":
        raise PrometheusError(f"{path}: {reply.get('errorType')}: {reply.get('error')}")
    return reply["data"]


def query(base_url: str, promql: str, *, timeout: float = 10.0) -> list[Sample]:
    """Evaluates `promql` now; it must yield an instant vector."""
    data = _data(base_url, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout)
    if data["resultType"] != "vector":
        raise PrometheusError(f"{promql!r} gave a {data['resultType']}, not a vector")
    return [
        Sample(
            labels=dict(item["metric"]),
            value=float(item["value"][1]),
            timestamp=float(item["value"][0]),
        )
        for item in data["result"]
    ]


def active_targets(base_url: str, *, timeout: float = 10.0) -> list[Target]:
    data = _data(base_url, "/api/v1/targets?state=active", timeout)
    return [
        Target(
            labels=dict(item["labels"]),
            scrape_url=item["scrapeUrl"],
            health=item["health"],
            last_error=item.get("lastError", ""),
        )
        for item in data["activeTargets"]
    ]
