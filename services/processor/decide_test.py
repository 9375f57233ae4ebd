"""The delivery rules: given the job row and the message's attempt, what the processor does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from observatory.jobs.v1 import job_pb2

from services.processor.decide import Action, RowState, Step, after_attempt, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = job_pb2


def row(
    status: job_pb2.JobStatus.ValueType,
    attempts: int,
    *,
    cancel: bool = False,
    lease: timedelta | None = None,
) -> RowState:
    return RowState(status, attempts, cancel, None if lease is None else NOW + lease)


@pytest.mark.parametrize(
    "status", [S.JOB_STATUS_PENDING, S.JOB_STATUS_RETRY_SCHEDULED], ids=["pending", "retry"]
)
def test_a_waiting_job_runs_the_next_attempt_only(status: job_pb2.JobStatus.ValueType) -> None:
    assert decide(row(status, 2), 3, NOW) is Action.RUN
    assert decide(row(status, 2), 2, NOW) is not Action.RUN
    assert decide(row(status, 2), 5, NOW) is Action.DROP


@pytest.mark.parametrize(
    "status",
    [
        S.JOB_STATUS_COMPLETED,
        S.JOB_STATUS_FAILED,
        S.JOB_STATUS_CANCELLED,
        S.JOB_STATUS_DEAD_LETTERED,
    ],
)
def test_a_terminal_job_never_runs_again(status: job_pb2.JobStatus.ValueType) -> None:
    for attempt in (1, 2, 3):
        assert decide(row(status, 2), attempt, NOW) is Action.REPLAY


def test_a_cancel_requested_before_the_attempt_wins() -> None:
    assert decide(row(S.JOB_STATUS_PENDING, 0, cancel=True), 1, NOW) is Action.CANCEL
    assert decide(row(S.JOB_STATUS_RETRY_SCHEDULED, 1, cancel=True), 2, NOW) is Action.CANCEL


def test_a_committed_retry_is_replayed_by_its_own_message() -> None:
    # Crash after committing RETRY_SCHEDULED but before publishing the retry message.
    assert decide(row(S.JOB_STATUS_RETRY_SCHEDULED, 2), 2, NOW) is Action.REPLAY


def test_a_running_attempt_is_never_run_twice_at_once() -> None:
    held = row(S.JOB_STATUS_RUNNING, 2, lease=timedelta(seconds=5))
    assert decide(held, 2, NOW) is Action.REDELAY
    assert decide(held, 3, NOW) is Action.DROP
    assert decide(held, 1, NOW) is Action.DROP


def test_an_expired_lease_abandons_the_attempt() -> None:
    assert decide(row(S.JOB_STATUS_RUNNING, 2, lease=timedelta(0)), 2, NOW) is Action.ABANDON
    assert decide(row(S.JOB_STATUS_RUNNING, 2, lease=-timedelta(1)), 2, NOW) is Action.ABANDON
    assert decide(row(S.JOB_STATUS_RUNNING, 2), 2, NOW) is Action.ABANDON  # no lease recorded


def step(outcome: job_pb2.AttemptOutcome.ValueType, attempt: int = 1, **kw: bool) -> Step:
    options = {"retryable": True, "cancel_requested": False} | kw
    return after_attempt(outcome, attempt=attempt, max_attempts=3, **options)


def test_where_a_finished_attempt_leads() -> None:
    assert step(S.ATTEMPT_OUTCOME_SUCCEEDED) is Step.COMPLETE
    assert step(S.ATTEMPT_OUTCOME_SUCCEEDED, cancel_requested=True) is Step.COMPLETE
    assert step(S.ATTEMPT_OUTCOME_CANCELLED) is Step.CANCEL
    assert step(S.ATTEMPT_OUTCOME_FAILED, cancel_requested=True) is Step.CANCEL
    assert step(S.ATTEMPT_OUTCOME_FAILED, retryable=False) is Step.FAIL
    for outcome in (
        S.ATTEMPT_OUTCOME_FAILED,
        S.ATTEMPT_OUTCOME_TIMED_OUT,
        S.ATTEMPT_OUTCOME_ABANDONED,
    ):
        assert step(outcome, attempt=2) is Step.RETRY
        assert step(outcome, attempt=3) is Step.DEAD_LETTER
