"""Running one attempt of a job function: classify how it ended, renewing the lease meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from observatory.jobs.v1 import job_pb2

from services.jobtypes.registry import (
    JobCancelledError,
    JobContext,
    JobError,
    JobFunction,
    JobTimeoutError,
)

# A function that ignores its context is given this long past its deadline before the attempt
# is declared timed out without it (its thread is left behind, as Python cannot kill it).
OVERRUN_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class AttemptResult:
    outcome: job_pb2.AttemptOutcome.ValueType
    error: str = ""
    retryable: bool = True
    seconds: float = 0.0


def call(function: JobFunction, ctx: JobContext, payload: Mapping[str, Any]) -> AttemptResult:
    """Runs the function and says how it ended; never raises."""
    started = time.monotonic()

    def ended(
        outcome: job_pb2.AttemptOutcome.ValueType, error: str = "", retry: bool = True
    ) -> AttemptResult:
        return AttemptResult(outcome, error, retry, time.monotonic() - started)

    try:
        function(ctx, payload)
    except JobCancelledError as error:
        return ended(job_pb2.ATTEMPT_OUTCOME_CANCELLED, str(error), retry=False)
    except JobTimeoutError as error:
        return ended(job_pb2.ATTEMPT_OUTCOME_TIMED_OUT, str(error))
    except JobError as error:
        return ended(job_pb2.ATTEMPT_OUTCOME_FAILED, str(error), retry=error.retryable)
    except Exception as error:  # a crashing job function is a failed attempt, never a dead worker
        return ended(job_pb2.ATTEMPT_OUTCOME_FAILED, f"{type(error).__name__}: {error}")
    return ended(job_pb2.ATTEMPT_OUTCOME_SUCCEEDED)


def run_attempt(
    function: JobFunction,
    ctx: JobContext,
    payload: Mapping[str, Any],
    *,
    heartbeat: Callable[[], None],
    interval: float,
) -> AttemptResult:
    """Runs the function in its own thread and calls `heartbeat` every `interval` s meanwhile."""
    results: list[AttemptResult] = []
    thread = threading.Thread(
        target=lambda: results.append(call(function, ctx, payload)), name="job", daemon=True
    )
    started = time.monotonic()
    thread.start()
    while True:
        thread.join(interval)
        if results:
            return results[0]
        if time.monotonic() > ctx.deadline + OVERRUN_GRACE_SECONDS:
            ctx.cancelled.set()  # ask it to stop; its eventual result is ignored
            return AttemptResult(
                job_pb2.ATTEMPT_OUTCOME_TIMED_OUT,
                "timed out (the function did not stop)",
                seconds=time.monotonic() - started,
            )
        heartbeat()
