"""Alerts: Alertmanager's webhook (version 4) upserted into PostgreSQL, and listed back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from observatory.readmodel.v1 import read_model_pb2
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.jobstore.store import Conn
from services.read_model.errors import InvalidArgumentError


@dataclass(frozen=True)
class AlertRow:
    fingerprint: str
    name: str
    severity: str
    state: str
    summary: str
    description: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None


def _time(value: object, field: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgumentError(field, f"expected an RFC 3339 time, got {value!r}") from None


def parse_webhook(body: Any) -> list[AlertRow]:
    """The alerts of one webhook notification; InvalidArgumentError names the bad field."""
    if not isinstance(body, dict):
        raise InvalidArgumentError("body", "expected a JSON object")
    if str(body.get("version", "")) != "4":
        raise InvalidArgumentError("version", f"expected '4', got {body.get('version')!r}")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidArgumentError("alerts", "expected a list")
    rows = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise InvalidArgumentError(where, "expected an object")
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        fingerprint = alert.get("fingerprint")
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            raise InvalidArgumentError(f"{where}.labels", "labels and annotations must be objects")
        if not fingerprint or not isinstance(fingerprint, str):
            raise InvalidArgumentError(f"{where}.fingerprint", "required")
        state = alert.get("status")
        if state not in ("firing", "resolved"):
            raise InvalidArgumentError(
                f"{where}.status", f"expected firing|resolved, got {state!r}"
            )
        # Alertmanager sends "0001-01-01T00:00:00Z" for an alert that has not ended.
        ends_at = _time(alert.get("endsAt") or "0001-01-01T00:00:00Z", f"{where}.endsAt")
        rows.append(
            AlertRow(
                fingerprint=fingerprint,
                name=str(labels.get("alertname", "")),
                severity=str(labels.get("severity", "")),
                state=state,
                summary=str(annotations.get("summary", "")),
                description=str(annotations.get("description", "")),
                labels={str(k): str(v) for k, v in labels.items()},
                starts_at=_time(alert.get("startsAt"), f"{where}.startsAt"),
                ends_at=None if state == "firing" or ends_at.year <= 1 else ends_at,
            )
        )
    return rows


_UPSERT = """
INSERT INTO alerts (fingerprint, name, severity, state, summary, description, labels,
                    starts_at, ends_at, updated_at)
VALUES (%(fingerprint)s, %(name)s, %(severity)s, %(state)s, %(summary)s, %(description)s,
        %(labels)s, %(starts_at)s, %(ends_at)s, now())
ON CONFLICT (fingerprint) DO UPDATE SET
    name = EXCLUDED.name, severity = EXCLUDED.severity, state = EXCLUDED.state,
    summary = EXCLUDED.summary, description = EXCLUDED.description, labels = EXCLUDED.labels,
    starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, updated_at = now()
"""


def upsert(conn: Conn, rows: list[AlertRow]) -> None:
    with conn.cursor() as cur:
        for row in rows:
            cur.execute(_UPSERT, {**row.__dict__, "labels": Jsonb(row.labels)})


_SEVERITIES = {
    "info": read_model_pb2.ALERT_SEVERITY_INFO,
    "warning": read_model_pb2.ALERT_SEVERITY_WARNING,
    "critical": read_model_pb2.ALERT_SEVERITY_CRITICAL,
}
_STATES = {
    "firing": read_model_pb2.ALERT_STATE_FIRING,
    "resolved": read_model_pb2.ALERT_STATE_RESOLVED,
}
_STATE_NAMES = {value: name for name, value in _STATES.items()}


def list_alerts(
    conn: Conn, request: read_model_pb2.ListAlertsRequest
) -> read_model_pb2.ListAlertsResponse:
    if read_model_pb2.ALERT_STATE_UNSPECIFIED in request.states:
        raise InvalidArgumentError("states", "ALERT_STATE_UNSPECIFIED is not a state")
    states = [_STATE_NAMES[s] for s in request.states] or list(_STATES)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM alerts WHERE state = ANY(%s)"
            " ORDER BY state = 'firing' DESC, starts_at DESC, fingerprint",
            (states,),
        ).fetchall()
    fields = AlertRow.__dataclass_fields__
    return read_model_pb2.ListAlertsResponse(
        alerts=[to_proto(AlertRow(**{name: row[name] for name in fields})) for row in rows]
    )


def to_proto(row: AlertRow) -> read_model_pb2.Alert:
    alert = read_model_pb2.Alert(
        fingerprint=row.fingerprint,
        name=row.name,
        severity=_SEVERITIES.get(row.severity, read_model_pb2.ALERT_SEVERITY_UNSPECIFIED),
        state=_STATES[row.state],
        summary=row.summary,
        description=row.description,
        labels=row.labels,
    )
    alert.starts_at.FromDatetime(row.starts_at)
    if row.ends_at is not None:
        alert.ends_at.FromDatetime(row.ends_at)
    return alert
