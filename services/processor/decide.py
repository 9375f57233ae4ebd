"""The delivery rules as pure functions: what to do with a work message given the job's row,
and where a finished attempt leads. No I/O here, so every rule is unit-tested directly."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from observatory.jobs.v1 import job_pb2

from services.jobstore import store


class Action(enum.Enum):
    RUN = "run"  # start attempt k
    REPLAY = "replay"  # the row already reflects this message: republish its effects, ack
    CANCEL = "cancel"  # cancel requested before the attempt started
    ABANDON = "abandon"  # attempt k's worker vanished (lease expired): count it as failed
    REDELAY = "redelay"  # attempt k may still be running elsewhere: look again later
    DROP = "drop"  # stale duplicate: ack and forget


@dataclass(frozen=True)
class RowState:
    status: job_pb2.JobStatus.ValueType
    attempts: int
    cancel_requested: bool
    lease_until: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RowState:
        return cls(
            status=store.status_value(row["status"]),
            attempts=row["attempts"],
            cancel_requested=row["cancel_requested"],
            lease_until=row["lease_until"],
        )


_WAITING = (job_pb2.JOB_STATUS_PENDING, job_pb2.JOB_STATUS_RETRY_SCHEDULED)


def decide(row: RowState, attempt: int, now: datetime) -> Action:
    """What to do with a work message for attempt `attempt` (1-based)."""
    if row.status in store.TERMINAL:
        return Action.REPLAY
    if row.status in _WAITING:
        return _waiting(row, attempt)
    if row.status == job_pb2.JOB_STATUS_RUNNING and row.attempts == attempt:
        expired = row.lease_until is None or row.lease_until <= now
        return Action.ABANDON if expired else Action.REDELAY
    return Action.DROP


def _waiting(row: RowState, attempt: int) -> Action:
    if row.cancel_requested:
        return Action.CANCEL
    if row.attempts == attempt - 1:
        return Action.RUN
    if row.status == job_pb2.JOB_STATUS_RETRY_SCHEDULED and row.attempts == attempt:
        # Attempt k failed and was committed, but its retry message may not have been published.
        return Action.REPLAY
    return Action.DROP


class Step(enum.Enum):
    COMPLETE = "complete"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    FAIL = "fail"
    CANCEL = "cancel"


def after_attempt(
    outcome: job_pb2.AttemptOutcome.ValueType,
    *,
    retryable: bool,
    attempt: int,
    max_attempts: int,
    cancel_requested: bool,
) -> Step:
    """Where the job goes once attempt `attempt` ended with `outcome`."""
    if outcome == job_pb2.ATTEMPT_OUTCOME_SUCCEEDED:
        return Step.COMPLETE
    if outcome == job_pb2.ATTEMPT_OUTCOME_CANCELLED or cancel_requested:
        return Step.CANCEL
    if not retryable:
        return Step.FAIL
    return Step.RETRY if attempt < max_attempts else Step.DEAD_LETTER
