"""The job detail as text: header fields, payload, attempts table and event timeline.

Pure functions of GetJobDetailResponse, so what the detail view shows is tested without urwid.
Times are UTC (the header says so): the same on every machine looking at the same stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2


def status_name(status: int) -> str:
    return job_pb2.JobStatus.Name(status).removeprefix("JOB_STATUS_")  # type: ignore[arg-type]


def when(stamp: Timestamp, *, with_date: bool = True) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    moment: datetime = stamp.ToDatetime()
    if with_date:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def seconds(duration: Duration) -> str:
    ms = duration.ToMilliseconds()
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f}s"
    return f"{ms // 60_000}m{(ms // 1000) % 60:02d}s"


def between(start: Timestamp, end: Timestamp) -> str:
    if not start.seconds or not end.seconds:
        return "-"
    duration = Duration()
    duration.FromNanoseconds(end.ToNanoseconds() - start.ToNanoseconds())
    return seconds(duration)


def header(job: job_pb2.Job) -> list[tuple[str, str]]:
    """(label, value) pairs, in reading order."""
    return [
        ("id", job.id),
        ("type", job.type),
        ("status", status_name(job.status) + ("  (cancel requested)" * job.cancel_requested)),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("priority", str(job.priority)),
        ("created", when(job.created_at)),
        ("updated", when(job.updated_at)),
        ("worker", job.worker or "-"),
    ]


def _whole_numbers(value: Any) -> Any:
    """Struct keeps every number as a double: show 3, not 3.0, for whole ones."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def payload_json(job: job_pb2.Job) -> str:
    data = _whole_numbers(json_format.MessageToDict(job.payload))
    return json.dumps(data, indent=2, sort_keys=True)


def outcome_name(attempt: job_pb2.JobAttempt) -> str:
    if attempt.outcome == job_pb2.ATTEMPT_OUTCOME_UNSPECIFIED:
        return "RUNNING"
    return job_pb2.AttemptOutcome.Name(attempt.outcome).removeprefix("ATTEMPT_OUTCOME_")


ATTEMPT_COLUMNS = ("#", "outcome", "started", "duration", "error")


def attempt_rows(attempts: list[job_pb2.JobAttempt]) -> list[tuple[str, str, str, str, str]]:
    return [
        (
            str(a.number),
            outcome_name(a),
            when(a.started_at, with_date=False),
            between(a.started_at, a.finished_at),
            a.error,
        )
        for a in sorted(attempts, key=lambda a: a.number)
    ]


def _created(e: event_pb2.EventEnvelope) -> str:
    c = e.job_created
    return f"priority {c.spec.priority}, max {c.max_attempts} attempts"


def _started(e: event_pb2.EventEnvelope) -> str:
    s = e.job_started
    return f"attempt {s.attempt} on {s.worker or '?'}, waited {seconds(s.queue_wait)}"


def _retry(e: event_pb2.EventEnvelope) -> str:
    r = e.job_retry_scheduled
    if not r.error:  # an operator's retry: zero delay, no error
        return f"re-queued after attempt {r.attempt} (operator retry)"
    return f"attempt {r.attempt} failed: {r.error}; next in {seconds(r.delay)}"


def _completed(e: event_pb2.EventEnvelope) -> str:
    c = e.job_completed
    return f"attempt {c.attempt} succeeded in {seconds(c.run_duration)} on {c.worker or '?'}"


def _failed(e: event_pb2.EventEnvelope) -> str:
    f = e.job_failed
    return f"attempt {f.attempt} failed for good: {f.error}"


def _cancelled(e: event_pb2.EventEnvelope) -> str:
    c = e.job_cancelled
    where = f"during attempt {c.attempt}" if c.attempt else "before running"
    return f"{where}" + (f": {c.reason}" if c.reason else "")


def _dead(e: event_pb2.EventEnvelope) -> str:
    d = e.job_dead_lettered
    last = f"; last error: {d.last_error}" if d.last_error else ""
    return f"{d.reason} after {d.attempts} attempts{last}"


_DETAILS: dict[str, Callable[[event_pb2.EventEnvelope], str]] = {
    "job_created": _created,
    "job_started": _started,
    "job_retry_scheduled": _retry,
    "job_completed": _completed,
    "job_failed": _failed,
    "job_cancelled": _cancelled,
    "job_dead_lettered": _dead,
}


def event_type_name(event: event_pb2.EventEnvelope) -> str:
    """ "job.retry_scheduled" for the job_retry_scheduled payload (the routing key's spelling)."""
    case = event.WhichOneof("payload")
    return "?" if case is None else case.replace("job_", "job.", 1)


def timeline_rows(events: list[event_pb2.EventEnvelope]) -> list[tuple[str, str, str]]:
    """(time, type, detail), oldest first (the read model's order, kept stable by time)."""
    ordered = sorted(events, key=lambda e: e.occurred_at.ToNanoseconds())
    rows = []
    for event in ordered:
        case = event.WhichOneof("payload")
        detail = _DETAILS[case](event) if case in _DETAILS else ""
        rows.append((when(event.occurred_at, with_date=False), event_type_name(event), detail))
    return rows
