"""The gateway's Prometheus metrics. Labels are bounded: transports, operations, outcomes and
registered job types only (never ids or client-chosen strings)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from prometheus_client import Counter, Gauge, Histogram

from services.gateway.service import (
    ConflictError,
    NotFoundError,
    Submitted,
    UnavailableError,
)
from services.gateway.validation import InvalidRequestError
from services.jobtypes import registry

SUBMITTED = Counter(
    "gateway_jobs_submitted_total",
    "Job submissions, by transport and outcome (accepted, duplicate, invalid, unavailable).",
    ["transport", "outcome"],
)
ACCEPTED_BY_TYPE = Counter(
    "gateway_jobs_accepted_by_type_total",
    "New jobs accepted, by job type (registered types only).",
    ["type"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_seconds",
    "Time to answer an API request, by transport, operation and outcome.",
    ["transport", "operation", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

GROUP_JOBS = Histogram(
    "gateway_submit_group_jobs",
    "Jobs per group commit: the submits written together in one transaction and one publish.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500, 1000),
)
SUBMITS_WAITING = Gauge(
    "gateway_submits_waiting",
    "Submits queued for a group commit writer (all writers busy); high for long: more writers.",
)

_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (InvalidRequestError, "invalid"),
    (NotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (UnavailableError, "unavailable"),
)


def outcome_of(error: Exception) -> str:
    for kind, outcome in _OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return "error"


@contextlib.contextmanager
def observed(transport: str, operation: str, *, jobs: int = 1) -> Iterator[None]:
    """Times a request; for submissions also counts the failed ones by outcome."""
    began = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as error:
        outcome = outcome_of(error)
        if operation == "submit" and outcome in ("invalid", "unavailable"):
            SUBMITTED.labels(transport, outcome).inc(jobs)
        raise
    finally:
        REQUEST_SECONDS.labels(transport, operation, outcome).observe(time.perf_counter() - began)


def count_submitted(transport: str, results: Sequence[Submitted], types: Sequence[str]) -> None:
    known = set(registry.names())
    for result, kind in zip(results, types, strict=True):
        SUBMITTED.labels(transport, "duplicate" if result.duplicate else "accepted").inc()
        if not result.duplicate and kind in known:
            ACCEPTED_BY_TYPE.labels(kind).inc()
