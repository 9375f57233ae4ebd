"""The job detail's text: times, durations, outcome names, timeline details."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2

from interfaces.tui.detail_model import (
    attempt_rows,
    header,
    payload_json,
    seconds,
    timeline_rows,
    when,
)


def stamp(second: int, ms: int = 0) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(datetime(2026, 1, 2, 3, 4, second, ms * 1000, tzinfo=UTC))
    return value


def test_unset_times_read_as_a_dash_and_set_ones_in_utc() -> None:
    assert when(Timestamp()) == "-"
    assert when(stamp(5)) == "2026-01-02 03:04:05"
    assert when(stamp(5, 42), with_date=False) == "03:04:05.042"


def test_durations_are_short() -> None:
    assert [seconds(Duration(nanos=ms * 1_000_000)) for ms in (0, 850)] == ["0ms", "850ms"]
    assert seconds(Duration(seconds=1, nanos=250_000_000)) == "1.25s"
    assert seconds(Duration(seconds=125)) == "2m05s"


def test_header_shows_cancel_requested_and_missing_worker() -> None:
    job = job_pb2.Job(status=job_pb2.JOB_STATUS_RUNNING, cancel_requested=True, max_attempts=3)
    fields = dict(header(job))
    assert fields["status"] == "RUNNING  (cancel requested)"
    assert fields["attempts"] == "0/3"
    assert fields["worker"] == "-"


def test_attempts_are_numbered_in_order_and_a_running_one_says_so() -> None:
    running = job_pb2.JobAttempt(number=2, started_at=stamp(9))
    done = job_pb2.JobAttempt(
        number=1,
        started_at=stamp(1),
        finished_at=stamp(3, 500),
        outcome=job_pb2.ATTEMPT_OUTCOME_TIMED_OUT,
        error="timed out",
    )
    assert attempt_rows([running, done]) == [
        ("1", "TIMED_OUT", "03:04:01.000", "2.50s", "timed out"),
        ("2", "RUNNING", "03:04:09.000", "-", ""),
    ]


def test_timeline_is_oldest_first_with_a_detail_per_event_type() -> None:
    retry = event_pb2.EventEnvelope(
        occurred_at=stamp(4), job_retry_scheduled=event_pb2.JobRetryScheduled(attempt=3)
    )
    cancelled = event_pb2.EventEnvelope(
        occurred_at=stamp(2), job_cancelled=event_pb2.JobCancelled(reason="operator")
    )
    completed = event_pb2.EventEnvelope(
        occurred_at=stamp(6),
        job_completed=event_pb2.JobCompleted(
            attempt=4, worker="p-2", run_duration=Duration(seconds=2)
        ),
    )
    assert timeline_rows([completed, retry, cancelled]) == [
        ("03:04:02.000", "job.cancelled", "before running: operator"),
        ("03:04:04.000", "job.retry_scheduled", "re-queued after attempt 3 (operator retry)"),
        ("03:04:06.000", "job.completed", "attempt 4 succeeded in 2.00s on p-2"),
    ]


def test_payload_is_pretty_json_with_whole_numbers() -> None:
    job = job_pb2.Job()
    job.payload.update({"b": [1, 2.5], "a": {"n": 3}})
    assert payload_json(job).splitlines() == [
        "{",
        '  "a": {',
        '    "n": 3',
        "  },",
        '  "b": [',
        "    1,",
        "    2.5",
        "  ]",
        "}",
    ]
