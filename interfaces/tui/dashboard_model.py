"""State of the live dashboard: what the screen shows, updated from the read model's feed.

Pure data (no urwid, no gRPC) so every rule is unit-tested: how job changes merge into the
table, what the filters match, how paging and selection behave, how numbers are formatted.
The feed (live.py) produces the `Update`s; the view (dashboard_view.py) renders this state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from google.protobuf.duration_pb2 import Duration
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

# Short names that fit a table column; the screen always prints them, so colour is optional.
STATUS_NAMES: dict[int, str] = {
    job_pb2.JOB_STATUS_UNSPECIFIED: "UNKNOWN",
    job_pb2.JOB_STATUS_PENDING: "PENDING",
    job_pb2.JOB_STATUS_RUNNING: "RUNNING",
    job_pb2.JOB_STATUS_RETRY_SCHEDULED: "RETRY",
    job_pb2.JOB_STATUS_COMPLETED: "COMPLETED",
    job_pb2.JOB_STATUS_FAILED: "FAILED",
    job_pb2.JOB_STATUS_CANCELLED: "CANCELLED",
    job_pb2.JOB_STATUS_DEAD_LETTERED: "DEAD",
}

# The `s` key steps through these; None is "all".
STATUS_CYCLE: tuple[int | None, ...] = (
    None,
    job_pb2.JOB_STATUS_PENDING,
    job_pb2.JOB_STATUS_RUNNING,
    job_pb2.JOB_STATUS_RETRY_SCHEDULED,
    job_pb2.JOB_STATUS_COMPLETED,
    job_pb2.JOB_STATUS_FAILED,
    job_pb2.JOB_STATUS_DEAD_LETTERED,
    job_pb2.JOB_STATUS_CANCELLED,
)

# Text markers, so severity reads without colour; most severe first.
SEVERITY_MARKERS: dict[int, str] = {
    rm.ALERT_SEVERITY_CRITICAL: "CRIT",
    rm.ALERT_SEVERITY_WARNING: "WARN",
    rm.ALERT_SEVERITY_INFO: "INFO",
    rm.ALERT_SEVERITY_UNSPECIFIED: "????",
}
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_MARKERS)}

DEFAULT_PAGE_SIZE = 10
MAX_LOADED_JOBS = 5000  # the table keeps at most this many jobs in memory


# ----- updates the feed hands over -----------------------------------------------------------


@dataclass(frozen=True)
class JobQuery:
    """The server-side part of the jobs-table filter (ListJobs filters); text is client-side."""

    status: int | None = None
    job_type: str | None = None

    def request(self, page_size: int, page_token: str = "") -> rm.ListJobsRequest:
        request = rm.ListJobsRequest(page_size=page_size, page_token=page_token)
        if self.status is not None:
            request.statuses.append(self.status)  # type: ignore[arg-type]
        if self.job_type is not None:
            request.types.append(self.job_type)
        return request

    def matches(self, job: job_pb2.Job) -> bool:
        return (self.status is None or job.status == self.status) and (
            self.job_type is None or job.type == self.job_type
        )


@dataclass(frozen=True)
class Connected:
    endpoint: str


@dataclass(frozen=True)
class Reconnecting:
    endpoint: str
    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True)
class StatsUpdate:
    stats: rm.Stats


@dataclass(frozen=True)
class JobsPage:
    """A ListJobs answer for `query`; `append` for an older page, else it replaces the table."""

    query: JobQuery
    jobs: tuple[job_pb2.Job, ...]
    next_page_token: str
    append: bool = False


@dataclass(frozen=True)
class JobUpdate:
    job: job_pb2.Job


@dataclass(frozen=True)
class AlertsSnapshot:
    alerts: tuple[rm.Alert, ...]


@dataclass(frozen=True)
class AlertUpdate:
    alert: rm.Alert


@dataclass(frozen=True)
class QueuesUpdate:
    queues: tuple[rm.Queue, ...]


Update = (
    Connected
    | Reconnecting
    | StatsUpdate
    | JobsPage
    | JobUpdate
    | AlertsSnapshot
    | AlertUpdate
    | QueuesUpdate
)


# ----- formatting ----------------------------------------------------------------------------


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "UNKNOWN")


def format_duration(duration: Duration) -> str:
    """ "850ms", "1.25s", "2m05s": short and comparable in a table column."""
    ms = duration.ToMilliseconds()
    if ms < 1000:
        return f"{ms}ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f}s"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes}m{seconds:02d}s"


def format_quantiles(quantiles: rm.LatencyQuantiles) -> tuple[str, str, str]:
    """p50, p95, p99; "-" each when there were no samples (the numbers would be meaningless)."""
    if quantiles.sample_count == 0:
        return ("-", "-", "-")
    return (
        format_duration(quantiles.p50),
        format_duration(quantiles.p95),
        format_duration(quantiles.p99),
    )


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


BLOCKS = " ▁▂▃▄▅▆▇█"
ASCII_BLOCKS = " .:-=+*#%@"


def sparkline(values: Sequence[int], width: int, blocks: str = BLOCKS) -> str:
    """The last `width` values as one character each, scaled to the largest; left-padded."""
    shown = list(values)[-width:] if width > 0 else []
    top = max(shown, default=0)
    levels = len(blocks) - 1
    chars = [
        blocks[0] if value <= 0 or top == 0 else blocks[max(1, round(value * levels / top))]
        for value in shown
    ]
    return " " * (width - len(chars)) + "".join(chars)


@dataclass(frozen=True)
class Throughput:
    completed: tuple[int, ...]  # per bucket, oldest first
    bucket_s: float
    window_s: float

    @property
    def rate_per_s(self) -> float:
        """Completed per second over the full buckets (the last one is still filling up)."""
        full = self.completed[:-1]
        return sum(full) / (len(full) * self.bucket_s) if full and self.bucket_s > 0 else 0.0

    @property
    def peak(self) -> int:
        return max(self.completed, default=0)


def throughput_of(stats: rm.Stats) -> Throughput | None:
    """The shortest window (finest buckets), which is what a sparkline needs."""
    if not stats.throughput:
        return None
    series = stats.throughput[0]
    return Throughput(
        completed=tuple(bucket.completed for bucket in series.buckets),
        bucket_s=series.bucket_width.ToMilliseconds() / 1000,
        window_s=series.window.ToMilliseconds() / 1000,
    )


def text_matches(job: job_pb2.Job, text: str) -> bool:
    """The `/` filter: id prefix, or part of the type, status name or last error (any case)."""
    needle = text.strip().lower()
    if not needle:
        return True
    return (
        job.id.lower().startswith(needle)
        or needle in job.type.lower()
        or needle in status_name(job.status).lower()
        or needle in job.last_error.lower()
    )


RETRY_QUEUE_PREFIX = "jobs.retry."


def collapse_retry_queues(queues: Sequence[rm.Queue]) -> list[rm.Queue]:
    """One "jobs.retry.*" row summing the per-delay retry queues, so they fit in a line or two."""
    retries = [q for q in queues if q.name.startswith(RETRY_QUEUE_PREFIX)]
    rows = [q for q in queues if not q.name.startswith(RETRY_QUEUE_PREFIX)]
    if retries:
        rows.append(
            rm.Queue(
                name=f"{RETRY_QUEUE_PREFIX}*",
                depth=sum(q.depth for q in retries),
                unacknowledged=sum(q.unacknowledged for q in retries),
                consumers=sum(q.consumers for q in retries),
            )
        )
    return sorted(rows, key=lambda q: q.name)


def _created_key(job: job_pb2.Job) -> tuple[int, str]:
    return (job.created_at.ToNanoseconds(), job.id)


# ----- the state -----------------------------------------------------------------------------


@dataclass
class Connection:
    live: bool = False
    endpoint: str = ""
    detail: str = "connecting..."
    ever_connected: bool = False


@dataclass
class DashboardModel:
    """Everything on the dashboard; `apply` takes feed updates, the key methods change the view.

    The jobs table is in the read model's order (newest created first) so that rows stay put
    while their status changes and older pages continue where the loaded ones end.
    """

    clock: Callable[[], float] = time.time
    connection: Connection = field(default_factory=Connection)
    stats: rm.Stats | None = None
    queues: tuple[rm.Queue, ...] = ()
    query: JobQuery = field(default_factory=JobQuery)
    text: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 0  # 0-based
    selected: int = 0  # index within the page
    next_page_token: str = ""
    loading: bool = True
    _jobs: list[job_pb2.Job] = field(default_factory=list)
    _alerts: dict[str, rm.Alert] = field(default_factory=dict)

    # -- updates from the feed

    def apply(self, update: Update) -> None:
        match update:
            case Connected(endpoint=endpoint):
                self.connection = Connection(True, endpoint, "live", ever_connected=True)
            case Reconnecting(endpoint=endpoint, attempt=attempt, delay_s=delay, reason=reason):
                self.connection = replace(
                    self.connection,
                    live=False,
                    endpoint=endpoint,
                    detail=f"reconnecting (attempt {attempt}, next try in {delay:.1f}s): {reason}",
                )
            case StatsUpdate(stats=stats):
                self.stats = stats
            case JobsPage():
                self._apply_page(update)
            case JobUpdate(job=job):
                self._apply_job(job)
            case AlertsSnapshot(alerts=alerts):
                self._alerts = {a.fingerprint: a for a in alerts if _firing(a)}
            case AlertUpdate(alert=alert):
                if _firing(alert):
                    self._alerts[alert.fingerprint] = alert
                else:
                    self._alerts.pop(alert.fingerprint, None)
            case QueuesUpdate(queues=queues):
                self.queues = queues
        self._clamp()

    def _apply_page(self, page: JobsPage) -> None:
        if page.query != self.query:
            return  # an answer to a filter the user has since changed
        if page.append:
            known = {job.id for job in self._jobs}
            self._jobs += [job for job in page.jobs if job.id not in known]
        else:  # a fresh first page (new filter, or re-queried after a reconnect)
            self._jobs = list(page.jobs)
            self.page = min(self.page, max(0, (len(self.filtered_jobs()) - 1) // self.page_size))
        self.next_page_token = page.next_page_token
        self.loading = False

    def _apply_job(self, job: job_pb2.Job) -> None:
        for index, known in enumerate(self._jobs):
            if known.id == job.id:
                if not self.query.matches(job):
                    del self._jobs[index]  # e.g. left the filtered status
                elif job.updated_at.ToNanoseconds() >= known.updated_at.ToNanoseconds():
                    self._jobs[index] = job  # events can arrive out of order: keep the newest
                return
        if not self.query.matches(job):
            return
        # A job older than everything loaded belongs on a page not fetched yet.
        if self.next_page_token and self._jobs and _created_key(job) < _created_key(self._jobs[-1]):
            return
        self._jobs.append(job)
        self._jobs.sort(key=_created_key, reverse=True)
        if len(self._jobs) > MAX_LOADED_JOBS:
            del self._jobs[MAX_LOADED_JOBS:]

    # -- what the screen shows

    @property
    def stale(self) -> bool:
        """Data is on screen but the feed is down: the numbers may be out of date."""
        return not self.connection.live and self.connection.ever_connected

    def alerts(self) -> list[rm.Alert]:
        """Firing alerts, most severe first, then newest first."""
        return sorted(
            self._alerts.values(),
            key=lambda a: (_SEVERITY_RANK.get(a.severity, 99), -a.starts_at.ToNanoseconds()),
        )

    def filtered_jobs(self) -> list[job_pb2.Job]:
        return [job for job in self._jobs if text_matches(job, self.text)]

    def page_rows(self) -> list[job_pb2.Job]:
        start = self.page * self.page_size
        return self.filtered_jobs()[start : start + self.page_size]

    def has_next_page(self) -> bool:
        return (self.page + 1) * self.page_size < len(self.filtered_jobs()) or bool(
            self.next_page_token
        )

    def selected_job(self) -> job_pb2.Job | None:
        rows = self.page_rows()
        return rows[self.selected] if 0 <= self.selected < len(rows) else None

    def status_counts(self) -> list[tuple[int, int]]:
        if self.stats is None:
            return []
        return [(c.status, c.count) for c in self.stats.by_status]

    def job_types(self) -> list[str]:
        return [] if self.stats is None else [t.type for t in self.stats.by_type]

    def filter_summary(self) -> str:
        status = "all" if self.query.status is None else status_name(self.query.status)
        parts = [f"status={status}", f"type={self.query.job_type or 'all'}"]
        if self.text:
            parts.append(f"/{self.text}")
        return " ".join(parts)

    def age_of(self, job: job_pb2.Job) -> str:
        return format_age(self.clock() - job.created_at.ToNanoseconds() / 1e9)

    # -- what the keys do; each returns what the feed must fetch, if anything

    def set_page_size(self, rows: int) -> None:
        first = self.page * self.page_size
        self.page_size = max(1, rows)
        self.page = first // self.page_size  # keep the first visible job on screen
        self._clamp()

    def next_page(self) -> str | None:
        """Moves one page on; returns a page token when older jobs must be fetched first."""
        if not self.has_next_page():
            return None
        self.page += 1
        self.selected = 0
        if len(self.filtered_jobs()) < (self.page + 1) * self.page_size and self.next_page_token:
            return self.next_page_token
        return None

    def prev_page(self) -> None:
        if self.page > 0:
            self.page -= 1
            self.selected = 0

    def move_selection(self, delta: int) -> None:
        self.selected += delta
        self._clamp()

    def cycle_status(self) -> JobQuery:
        index = STATUS_CYCLE.index(self.query.status) if self.query.status in STATUS_CYCLE else 0
        return self._requery(
            replace(self.query, status=STATUS_CYCLE[(index + 1) % len(STATUS_CYCLE)])
        )

    def cycle_type(self) -> JobQuery:
        choices: list[str | None] = [None, *self.job_types()]
        index = choices.index(self.query.job_type) if self.query.job_type in choices else 0
        return self._requery(replace(self.query, job_type=choices[(index + 1) % len(choices)]))

    def set_text(self, text: str) -> None:
        self.text = text.strip()
        self.page = 0
        self.selected = 0

    def _requery(self, query: JobQuery) -> JobQuery:
        """A new server-side filter: the table empties until the feed answers for it."""
        self.query = query
        self._jobs = []
        self.next_page_token = ""
        self.loading = True
        self.page = 0
        self.selected = 0
        return query

    def _clamp(self) -> None:
        rows = len(self.filtered_jobs())
        last_page = max(0, (rows - 1) // self.page_size)
        # Stay on a page past the loaded jobs while its older jobs are being fetched.
        if not self.next_page_token:
            self.page = min(self.page, last_page)
        visible = len(self.page_rows())
        self.selected = min(max(0, self.selected), max(0, visible - 1))


def _firing(alert: rm.Alert) -> bool:
    return alert.state == rm.ALERT_STATE_FIRING
