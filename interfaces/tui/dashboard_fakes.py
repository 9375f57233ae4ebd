"""Test doubles for the dashboard: a feed the test drives, and read-model messages to feed it."""

from __future__ import annotations

from dataclasses import dataclass, field

from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.dashboard_model import JobQuery, Update
from interfaces.tui.live import Sink

NOW = 1_800_000_000.0  # a fixed "now" (seconds since the epoch) for ages


@dataclass
class FakeFeed:
    """Records what the dashboard asks for; `push` delivers updates as the real feed would."""

    target: str
    sink: Sink
    started: bool = False
    stopped: bool = False
    queries: list[JobQuery] = field(default_factory=list)
    loads: list[tuple[JobQuery, str]] = field(default_factory=list)

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True

    def set_query(self, query: JobQuery) -> None:
        self.queries.append(query)

    def load_more(self, query: JobQuery, page_token: str) -> None:
        self.loads.append((query, page_token))

    def push(self, *updates: Update) -> None:
        for update in updates:
            self.sink(update)


def job(
    number: int,
    status: int = job_pb2.JOB_STATUS_COMPLETED,
    *,
    job_type: str = "email.send",
    last_error: str = "",
    attempts: int = 1,
    age_s: float = 600.0,
    updated_s: float = 0.0,
) -> job_pb2.Job:
    """Job `number`: higher numbers are created later (newest first = highest first)."""
    result = job_pb2.Job(
        id=f"{number:08x}-0000-4000-8000-000000000000",
        type=job_type,
        status=status,  # type: ignore[arg-type]
        attempts=attempts,
        max_attempts=3,
        last_error=last_error,
    )
    result.created_at.FromNanoseconds(int((NOW - age_s + number) * 1e9))
    result.updated_at.FromNanoseconds(int((NOW - age_s + number + updated_s) * 1e9))
    return result


def stats(
    counts: dict[int, int] | None = None,
    *,
    types: tuple[str, ...] = ("email.send", "report.build"),
    completed: tuple[int, ...] = (0, 1, 2, 4, 8, 4, 2),
    p50_ms: int = 12,
) -> rm.Stats:
    counts = counts or {job_pb2.JOB_STATUS_COMPLETED: 1200, job_pb2.JOB_STATUS_FAILED: 5}
    result = rm.Stats(total_jobs=sum(counts.values()))
    for status in job_pb2.JobStatus.values():
        if status != job_pb2.JOB_STATUS_UNSPECIFIED:
            result.by_status.add(status=status, count=counts.get(status, 0))
    for job_type in types:
        result.by_type.add(type=job_type, total=1)
    series = result.throughput.add()
    series.window.FromSeconds(60)
    series.bucket_width.FromSeconds(1)
    for count in completed:
        series.buckets.add(completed=count)
    for kind, factor in (("queue_wait", 1), ("run", 100), ("end_to_end", 120)):
        quantiles: rm.LatencyQuantiles = getattr(result, kind)
        quantiles.sample_count = 10
        quantiles.p50.FromMilliseconds(p50_ms * factor)
        quantiles.p95.FromMilliseconds(p50_ms * factor * 2)
        quantiles.p99.FromMilliseconds(p50_ms * factor * 3)
    return result


def alert(
    name: str,
    severity: int = rm.ALERT_SEVERITY_CRITICAL,
    *,
    state: int = rm.ALERT_STATE_FIRING,
    summary: str = "something is wrong",
    started_s: float = 0.0,
) -> rm.Alert:
    result = rm.Alert(
        fingerprint=f"fp-{name}",
        name=name,
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        summary=summary,
    )
    result.starts_at.FromNanoseconds(int((NOW + started_s) * 1e9))
    return result


def queues() -> tuple[rm.Queue, ...]:
    return (
        rm.Queue(name="jobs.dead", depth=2, dead_letter=True),
        rm.Queue(name="jobs.retry.1000", depth=1),
        rm.Queue(name="jobs.retry.4000", depth=3),
        rm.Queue(name="jobs.work", depth=17, unacknowledged=4, consumers=2),
    )
