"""Alertmanager webhook (version 4) parsing: firing and resolved alerts, bad input named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from observatory.readmodel.v1 import read_model_pb2 as rm

from services.read_model.alerts import parse_webhook, to_proto
from services.read_model.errors import InvalidArgumentError


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "read-model", "alerts": list(alerts)}


FIRING = {
    "status": "firing",
    "labels": {"alertname": "DeadLetterGrowing", "severity": "critical", "queue": "jobs.dead"},
    "annotations": {"summary": "DLQ growing", "description": "Re-drive or discard."},
    "startsAt": "2026-01-02T03:04:05.123Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "fingerprint": "abc123",
}


def test_firing_and_resolved_alerts_are_parsed() -> None:
    resolved = {**FIRING, "status": "resolved", "fingerprint": "def456",
                "endsAt": "2026-01-02T04:00:00Z"}  # fmt: skip
    firing_row, resolved_row = parse_webhook(notification(FIRING, resolved))
    assert firing_row.name == "DeadLetterGrowing"
    assert firing_row.state == "firing" and firing_row.ends_at is None
    assert firing_row.starts_at == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert resolved_row.ends_at == datetime(2026, 1, 2, 4, tzinfo=UTC)
    alert = to_proto(firing_row)
    assert alert.severity == rm.ALERT_SEVERITY_CRITICAL
    assert alert.state == rm.ALERT_STATE_FIRING
    assert alert.labels["queue"] == "jobs.dead"
    assert alert.summary == "DLQ growing"
    assert not alert.HasField("ends_at")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4"}, "alerts"),
        (notification({**FIRING, "fingerprint": ""}), "alerts[0].fingerprint"),
        (notification({**FIRING, "status": "pending"}), "alerts[0].status"),
        (notification({**FIRING, "startsAt": "yesterday"}), "alerts[0].startsAt"),
    ],
)
def test_bad_notifications_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        parse_webhook(body)
    assert error.value.field == field
