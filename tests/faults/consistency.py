"""The end-of-test check every fault test shares: nothing lost, nothing counted twice, and the
four stores (PostgreSQL, MongoDB, Redis, the read model) telling the same story.

PostgreSQL is the system of record; the others follow it through events, so the check waits
(bounded) for them to converge, and for both metrics-engine queues (event store, aggregates:
consumed independently, so one store may lag the other) to be drained, and then requires exact
agreement. A failure names the store,
the discrepancy and (some of) the job ids.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import grpc
from observatory.readmodel.v1 import read_model_pb2, read_model_pb2_grpc

from services.aggregates.store import PREFIX, status_key
from services.common import http_json, mongo, postgres, redis_store
from services.common.topology import METRICS_ENGINE_QUEUES
from services.metrics_engine.documents import COLLECTION, DATABASE
from tests.faults.observe import queue_backlog
from tests.faults.stack import Stack

TERMINAL = frozenset({"completed", "failed", "cancelled", "dead_lettered"})
TERMINAL_EVENTS = frozenset(
    {
        "EVENT_TYPE_JOB_COMPLETED",
        "EVENT_TYPE_JOB_FAILED",
        "EVENT_TYPE_JOB_CANCELLED",
        "EVENT_TYPE_JOB_DEAD_LETTERED",
    }
)
CREATED_EVENT = "EVENT_TYPE_JOB_CREATED"
RETRY_EVENT = "EVENT_TYPE_JOB_RETRY_SCHEDULED"
SHOWN_IDS = 10  # job ids printed per discrepancy


@dataclass(frozen=True)
class JobRow:
    status: str
    idempotency_key: str | None
    succeeded_attempts: int


@dataclass
class Snapshot:
    """What each store says right now."""

    jobs: dict[str, JobRow]
    created_events: Counter[str]  # job id -> job.created events in MongoDB
    terminal_events: Counter[str]  # job id -> terminal events in MongoDB
    # job id -> RetryJob calls (retry_scheduled events by the gateway): each one is a new life
    # of the job, which ends in another terminal event.
    manual_retries: Counter[str]
    terminal_by_type: Counter[str]  # "completed" -> completed events in MongoDB
    duplicate_event_ids: list[str]
    redis_status: dict[str, int]
    redis_totals: dict[str, int]
    stats_status: dict[str, int]
    stats_total: int
    outbox_entries: int = 0  # committed changes whose messages the broker has not confirmed
    # metrics-engine queue -> messages ready or unacked: events a store has yet to take
    engine_backlog: dict[str, int] = field(default_factory=dict)

    def postgres_status_counts(self) -> dict[str, int]:
        return dict(Counter(row.status for row in self.jobs.values()))


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)

    def add(self, store: str, what: str, ids: Iterable[str] = ()) -> None:
        shown = sorted(ids)
        more = f" (+{len(shown) - SHOWN_IDS} more)" if len(shown) > SHOWN_IDS else ""
        listed = f": {shown[:SHOWN_IDS]}{more}" if shown else ""
        self.problems.append(f"[{store}] {what}{listed}")

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: count for name, count in counts.items() if count}


def snapshot(stack: Stack) -> Snapshot:
    with postgres.connect(stack.postgres.info.dsn, autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT j.id::text, j.status, j.idempotency_key,
                   count(a.*) FILTER (WHERE a.outcome = 'succeeded')
            FROM jobs j LEFT JOIN job_attempts a ON a.job_id = j.id
            GROUP BY j.id
            """
        ).fetchall()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()
    jobs = {row[0]: JobRow(row[1], row[2], int(row[3])) for row in rows}

    client = mongo.connect(stack.mongo.info.url)
    try:
        documents = client[DATABASE][COLLECTION].find(
            {}, {"_id": 0, "eventId": 1, "jobId": 1, "eventType": 1, "producer": 1}
        )
        event_ids: Counter[str] = Counter()
        created: Counter[str] = Counter()
        terminal: Counter[str] = Counter()
        retries: Counter[str] = Counter()
        by_type: Counter[str] = Counter()
        for document in documents:
            event_ids[document["eventId"]] += 1
            event_type, job_id = document["eventType"], document["jobId"]
            if event_type == CREATED_EVENT:
                created[job_id] += 1
            elif event_type in TERMINAL_EVENTS:
                terminal[job_id] += 1
                by_type[event_type.removeprefix("EVENT_TYPE_JOB_").lower()] += 1
            elif (
                event_type == RETRY_EVENT
                and document.get("producer", {}).get("service") == "gateway"
            ):
                retries[job_id] += 1
    finally:
        client.close()

    redis = redis_store.connect(stack.redis.info.url)
    try:
        redis_status = {str(k): int(v) for k, v in redis.hgetall(PREFIX + "status").items()}
        redis_totals = {str(k): int(v) for k, v in redis.hgetall(PREFIX + "totals").items()}
    finally:
        redis.close()

    with grpc.insecure_channel(stack.read_model.info.grpc_target) as channel:
        stub = read_model_pb2_grpc.ReadModelServiceStub(channel)
        stats = stub.GetStats(read_model_pb2.GetStatsRequest(), timeout=30).stats
    backlog = {queue: queue_backlog(stack.rabbitmq.info, queue) for queue in METRICS_ENGINE_QUEUES}
    return Snapshot(
        jobs=jobs,
        created_events=created,
        terminal_events=terminal,
        manual_retries=retries,
        terminal_by_type=by_type,
        duplicate_event_ids=[event_id for event_id, n in event_ids.items() if n > 1],
        redis_status=_nonzero(redis_status),
        redis_totals=redis_totals,
        stats_status=_nonzero({status_key(c.status): c.count for c in stats.by_status}),
        stats_total=stats.total_jobs,
        outbox_entries=int(outbox[0]) if outbox else 0,
        engine_backlog=backlog,
    )


def compare(
    found: Snapshot,
    accepted: set[str],
    keys: Mapping[str, str] | None = None,
    expect_status: str | None = None,
) -> Report:
    """Every discrepancy between the stores and what the gateway accepted (pure: unit-tested).

    `keys` maps the idempotency keys the client used to the job id it was given: each key must
    be exactly one job, and PostgreSQL must hold no job the client was never given (a job
    published, then rolled back by a 503, and recorded anyway would show up here).
    """
    report = Report()
    _check_postgres(report, found.jobs, accepted, keys, expect_status)
    if found.outbox_entries:
        report.add("postgres", f"{found.outbox_entries} outbox entries never delivered")
    waiting = {queue: n for queue, n in found.engine_backlog.items() if n}
    if waiting:
        report.add("rabbitmq", f"metrics-engine queues not drained: {waiting}")
    _check_mongodb(report, found)
    _check_counters(report, found)
    return report


def _check_postgres(
    report: Report,
    jobs: Mapping[str, JobRow],
    accepted: set[str],
    keys: Mapping[str, str] | None,
    expect_status: str | None,
) -> None:
    missing = accepted - jobs.keys()
    if missing:
        report.add("postgres", f"{len(missing)} accepted jobs are missing", missing)
    not_terminal = {job_id for job_id, row in jobs.items() if row.status not in TERMINAL}
    if not_terminal:
        report.add("postgres", f"{len(not_terminal)} jobs are not terminal", not_terminal)
    if expect_status is not None:
        other = {
            job_id for job_id in accepted & jobs.keys() if jobs[job_id].status != expect_status
        }
        statuses = Counter(jobs[job_id].status for job_id in other)
        if other:
            report.add("postgres", f"accepted jobs not {expect_status}: {dict(statuses)}", other)
    unknown = jobs.keys() - accepted
    if unknown:
        report.add("postgres", f"{len(unknown)} jobs were never accepted by the gateway", unknown)
    if keys is not None:
        by_key: dict[str, list[str]] = {}
        for job_id, row in jobs.items():
            if row.idempotency_key is not None:
                by_key.setdefault(row.idempotency_key, []).append(job_id)
        doubled = {key for key, ids in by_key.items() if len(ids) > 1}
        if doubled:
            report.add("postgres", "idempotency keys with more than one job", doubled)
        wrong = {key for key, job_id in keys.items() if by_key.get(key, [job_id]) != [job_id]}
        if wrong:
            report.add("postgres", "keys whose job is not the one the client was given", wrong)
    twice = {job_id for job_id, row in jobs.items() if row.succeeded_attempts > 1}
    if twice:
        report.add("postgres", "jobs with more than one succeeded attempt", twice)


def _check_mongodb(report: Report, found: Snapshot) -> None:
    jobs = found.jobs
    if found.duplicate_event_ids:
        report.add("mongodb", "event ids stored twice", found.duplicate_event_ids)
    no_created = {job_id for job_id in jobs if found.created_events[job_id] != 1}
    if no_created:
        report.add("mongodb", "jobs without exactly one job.created event", no_created)
    terminal_wrong = {
        job_id
        for job_id, row in jobs.items()
        if row.status in TERMINAL
        and found.terminal_events[job_id] != 1 + found.manual_retries[job_id]
    }
    if terminal_wrong:
        counts = Counter(found.terminal_events[job_id] for job_id in terminal_wrong)
        report.add(
            "mongodb",
            f"terminal jobs without one terminal event per life (event counts: {dict(counts)})",
            terminal_wrong,
        )
    strays = (found.created_events.keys() | found.terminal_events.keys()) - jobs.keys()
    if strays:
        report.add("mongodb", "events of jobs PostgreSQL does not have", strays)


def _check_counters(report: Report, found: Snapshot) -> None:
    """Redis aggregates and the read model's GetStats against PostgreSQL and MongoDB."""
    expected, total = found.postgres_status_counts(), len(found.jobs)
    if found.redis_status != expected:
        report.add("redis", f"status counts {found.redis_status} != postgres {expected}")
    if found.redis_totals.get("submitted", 0) != total:
        report.add(
            "redis", f"totals.submitted {found.redis_totals.get('submitted')} != {total} jobs"
        )
    # Totals count events: a terminal event applied twice would show here.
    for status in sorted(TERMINAL):
        counted, stored = found.redis_totals.get(status, 0), found.terminal_by_type[status]
        if counted != stored:
            report.add("redis", f"totals.{status} {counted} != {stored} events in mongodb")
    if found.stats_status != expected or found.stats_total != total:
        report.add(
            "read model",
            f"GetStats {found.stats_status} (total {found.stats_total}) != postgres {expected}"
            f" (total {total})",
        )


def diagnostics(stack: Stack) -> str:
    """What the broker holds and what the services said last: where a stuck job might be."""
    info = stack.rabbitmq.info
    try:
        queues = http_json.get_json(
            f"{info.management_url}/api/queues", auth=(info.username, info.password)
        )
        lines = [
            f"  {q['name']}: ready={q.get('messages_ready', '?')}"
            f" unacked={q.get('messages_unacknowledged', '?')} consumers={q.get('consumers', '?')}"
            for q in queues
        ]
    except (OSError, http_json.HttpError) as error:
        lines = [f"  (management API: {error})"]
    return "queues:\n" + "\n".join(lines) + "\n" + stack.log_reports(15)


def check_consistency(
    stack: Stack,
    accepted: set[str],
    *,
    keys: Mapping[str, str] | None = None,
    expect_status: str | None = None,
    timeout: float = 180.0,
) -> Snapshot:
    """Waits until the stores agree (see `compare`), or fails with the last discrepancies."""
    deadline = time.monotonic() + timeout
    while True:
        found = snapshot(stack)
        report = compare(found, accepted, keys, expect_status)
        if not report:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"stores disagree after {timeout:g}s ({len(accepted)} accepted jobs):\n{report}"
                f"\n{diagnostics(stack)}"
            )
        time.sleep(1.0)
