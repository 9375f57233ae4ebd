"""The Alertmanager v2 API: posting alerts and reading them back."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.common.http_json import get_json, post_json


@dataclass(frozen=True)
class Alert:
    """An alert to post. Without `ends_at` it stays active until resolved or timed out."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }
        if self.starts_at is not None:
            body["startsAt"] = self.starts_at.isoformat()
        if self.ends_at is not None:
            body["endsAt"] = self.ends_at.isoformat()
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


@dataclass(frozen=True)
class ReceivedAlert:
    """An alert as Alertmanager holds it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # "unprocessed", "active" or "suppressed"
    fingerprint: str
    receivers: list[str]


def post_alerts(base_url: str, alerts: Sequence[Alert], *, timeout: float = 10.0) -> None:
    post_json(f"{base_url}/api/v2/alerts", [alert.to_json() for alert in alerts], timeout=timeout)


def list_alerts(
    base_url: str, *, matchers: Sequence[str] = (), timeout: float = 10.0
) -> list[ReceivedAlert]:
    """Alerts matching all `matchers` (e.g. 'alertname="JobStuck"'), silenced ones included."""
    query = urllib.parse.urlencode([("filter", matcher) for matcher in matchers])
    reply = get_json(f"{base_url}/api/v2/alerts?{query}", timeout=timeout)
    return [
        ReceivedAlert(
            labels=dict(item["labels"]),
            annotations=dict(item.get("annotations", {})),
            state=item["status"]["state"],
            fingerprint=item["fingerprint"],
            receivers=[receiver["name"] for receiver in item.get("receivers", [])],
        )
        for item in reply
    ]
