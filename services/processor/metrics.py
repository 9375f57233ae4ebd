"""Prometheus metrics of the processor. Labels are bounded: job types come from the registry
(unknown types never get this far), poison kinds from a fixed set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STARTED = Counter("processor_jobs_started_total", "Attempts started", ["type"])
COMPLETED = Counter("processor_jobs_completed_total", "Jobs completed", ["type"])
FAILED = Counter("processor_jobs_failed_total", "Jobs failed (non-retryable)", ["type"])
RETRIED = Counter("processor_jobs_retried_total", "Retries scheduled", ["type"])
DEAD_LETTERED = Counter("processor_jobs_dead_lettered_total", "Jobs dead-lettered", ["type"])
CANCELLED = Counter("processor_jobs_cancelled_total", "Jobs cancelled", ["type"])
ABANDONED = Counter("processor_attempts_abandoned_total", "Attempts of vanished workers", ["type"])
DURATION = Histogram(
    "processor_job_duration_seconds",
    "Run time of attempts",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
# Project-owned latency, independent of any broker: how long a job waited in the queue before an
# attempt started, and how long it took from submission to its final state.
QUEUE_WAIT = Histogram(
    "processor_queue_wait_seconds",
    "Time from eligible (created, or backoff over) to attempt start",
    ["type"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
END_TO_END = Histogram(
    "processor_job_end_to_end_seconds",
    "Time from submission to completed, failed or dead-lettered",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
IN_FLIGHT = Gauge("processor_jobs_in_flight", "Attempts running now")
POISON = Counter("processor_poison_messages_total", "Messages rejected as poison", ["kind"])
# A work message of a job the gateway rolled back, whose idempotency key another job now owns.
ORPHAN_KEY_TAKEN = "idempotency_key_taken"
ORPHANS_DROPPED = Counter(
    "processor_orphan_messages_dropped_total",
    "Work messages of jobs never committed, acked without running",
    ["reason"],
)
