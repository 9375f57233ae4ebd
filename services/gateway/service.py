"""What the gateway does, whatever the transport: submit, cancel, retry and read jobs.

Every change is one PostgreSQL transaction that writes its rows and an outbox entry with its
messages (work, events, cancel broadcast); after the commit the messages are published with
confirms (outbox.py). A job is accepted once its row and its messages are committed: the outbox
delivers them even if the broker fails right after. A broker already known to be down refuses
the change before anything is written (UnavailableError), so clients see the outage.
Concurrent submits are coalesced into one such change (group commit, group_commit.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import psycopg
from google.protobuf.timestamp_pb2 import Timestamp
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from psycopg.rows import dict_row

from services.common import events, ids, topology
from services.common.wire import (
    ATTEMPT_HEADER,
    CONTRACT_MAJOR,
    JOB_MESSAGE_TYPE,
    VERSION_HEADER,
)
from services.gateway import group_commit, validation
from services.gateway.config import GroupLimits, Limits
from services.gateway.group_commit import GroupCommitter, Written
from services.gateway.outbox import Outbox
from services.gateway.publisher import BrokerUnavailableError, Message
from services.jobstore import store

RETRYABLE = ("failed", "dead_lettered", "cancelled")
RETRY_ALL = ("failed", "dead_lettered")
RETRY_ALL_CHUNK = 500  # jobs re-queued per transaction by retry_failed


class UnavailableError(RuntimeError):
    """A backing store or the broker is down; the client may retry (same idempotency key)."""


class NotFoundError(LookupError):
    pass


class ConflictError(RuntimeError):
    """The job's status does not allow the action."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    event_id: str
    status: job_pb2.JobStatus.ValueType
    duplicate: bool


T = TypeVar("T")


class ConnectionSource(Protocol):
    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...


class Broker(Protocol):
    def ensure_connected(self) -> None: ...


@dataclass
class Outgoing:
    """A change's messages, sent after its commit: its events travel batched per event type."""

    messages: list[Message] = field(default_factory=list)
    events: list[event_pb2.EventEnvelope] = field(default_factory=list)

    def all(self) -> list[Message]:
        return self.messages + [event_message(m) for m in events.to_messages(self.events)]


def work_message(job: job_pb2.Job, attempt: int) -> Message:
    return Message(
        exchange=topology.JOBS_EXCHANGE,
        routing_key=topology.WORK_ROUTING_KEY,
        body=job.SerializeToString(),
        type=JOB_MESSAGE_TYPE,
        headers={ATTEMPT_HEADER: attempt, VERSION_HEADER: CONTRACT_MAJOR},
        priority=job.priority,
        correlation_id=job.correlation_id,
    )


def event_message(message: events.EventMessage) -> Message:
    return Message(
        exchange=topology.EVENTS_EXCHANGE,
        routing_key=message.routing_key,
        body=message.body,
        type=message.message_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
    )


def cancel_broadcast(job_id: str) -> Message:
    return Message(
        exchange=topology.CONTROL_EXCHANGE,
        routing_key="",
        body=job_id.encode(),
        type="cancel",
        mandatory=False,
    )


def retry_budget(job: job_pb2.Job, limits: Limits) -> int:
    """Attempts a retried job gets: what it had left, but at least the default budget.

    A job cancelled before it ran keeps its whole budget; an exhausted one gets the default
    again. Bounded, so retrying a job over and over never inflates max_attempts geometrically.
    """
    return max(job.max_attempts - job.attempts, limits.default_max_attempts)


@dataclass(frozen=True)
class Submission:
    """One submit call, ready to write: its specs, the jobs made of them, its arrival time."""

    specs: list[job_pb2.JobSpec]
    jobs: list[job_pb2.Job]
    now: datetime


class JobService:
    def __init__(
        self,
        pool: ConnectionSource,
        broker: Broker,
        outbox: Outbox,
        limits: Limits,
        producer: event_pb2.Producer,
        *,
        groups: GroupLimits,
        on_group: Callable[[int], None] = lambda jobs: None,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._outbox = outbox
        self._limits = limits
        self._producer = producer
        # Concurrent submits share one change (on_group gets each group's job count).
        self._groups: GroupCommitter[Submission, list[Submitted]] = GroupCommitter(
            self._commit_group, groups, on_group=on_group
        )

    def submit(self, specs: Sequence[job_pb2.JobSpec], correlation_id: str) -> list[Submitted]:
        """Records and enqueues validated specs, all or none, in one transaction and one confirmed
        publish, shared with the concurrent submits of the same group (group_commit.py)."""
        now = datetime.now(UTC)
        created_at = events.timestamp(now)  # once per submit: every job shares it
        # Built before joining a group: whatever is wrong with this request fails it alone.
        submission = Submission(
            specs=list(specs),
            jobs=[self._new_job(spec, correlation_id, created_at) for spec in specs],
            now=now,
        )
        try:
            return self._groups.run(submission, len(submission.jobs))
        except group_commit.ClosedError as error:
            raise UnavailableError(str(error)) from error

    def queued_submits(self) -> int:
        """Submits waiting for a writer: all `max_writers` groups are being written."""
        return self._groups.queued()

    def close(self, timeout: float) -> bool:
        """Refuses new submits and waits up to `timeout` for those being written (False if some
        still are); submits still queued answer UnavailableError."""
        return self._groups.close(timeout)

    def get(self, job_id: str) -> job_pb2.Job:
        job_id = validation.parse_job_id(job_id)

        def work(conn: psycopg.Connection[Any]) -> job_pb2.Job:
            job = store.get_job(conn, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            return job

        return self._in_transaction(work)

    def cancel(self, job_id: str, reason: str) -> tuple[job_pb2.Job, str]:
        """(job after the request, id of the job.cancelled event or "" when only requested)."""
        job_id = validation.parse_job_id(job_id)

        def work(conn: psycopg.Connection[Any], outgoing: Outgoing) -> tuple[job_pb2.Job, str]:
            row = self._locked_row(conn, job_id)
            status = row["status"]
            if status == "cancelled":
                return store.job_from_row(row), ""  # idempotent no-op
            if status == "running":
                # Version unchanged: no transition happened yet and no event is published; the
                # processor running it makes the transition (and its event) when it stops.
                row = self._update(conn, job_id, "cancel_requested = true", bump=False)
                outgoing.messages.append(cancel_broadcast(job_id))
                return store.job_from_row(row), ""
            if status not in ("pending", "retry_scheduled"):
                raise ConflictError(
                    f"job {job_id} is {status}; only pending, retry_scheduled "
                    "or running jobs can be cancelled"
                )
            row = self._update(
                conn, job_id, "status = 'cancelled', finished_at = now(), next_attempt_at = NULL"
            )
            # attempt 0: no attempt was running, the job was stopped while waiting.
            envelope = self._event(row, job_cancelled=event_pb2.JobCancelled(reason=reason))
            outgoing.events.append(envelope)
            return store.job_from_row(row), envelope.event_id

        return self._change(work)

    def retry(self, job_id: str) -> tuple[job_pb2.Job, str]:
        """Re-queues a failed, dead-lettered or cancelled job; (job, job.retry_scheduled id)."""
        job_id = validation.parse_job_id(job_id)

        def work(conn: psycopg.Connection[Any], outgoing: Outgoing) -> tuple[job_pb2.Job, str]:
            row = self._locked_row(conn, job_id)
            if row["status"] not in RETRYABLE:
                raise ConflictError(
                    f"job {job_id} is {row['status']}; only {', '.join(RETRYABLE)} jobs can be "
                    "retried"
                )
            job = self._requeue(conn, store.job_from_row(row), outgoing)
            return job, outgoing.events[-1].event_id

        return self._change(work)

    def retry_failed(self) -> int:
        """Re-queues every FAILED and DEAD_LETTERED job; returns how many."""
        total = 0
        while True:

            def work(conn: psycopg.Connection[Any], outgoing: Outgoing) -> int:
                with conn.cursor(row_factory=dict_row) as cur:
                    rows = cur.execute(
                        "SELECT * FROM jobs WHERE status = ANY(%s) ORDER BY created_at"
                        " LIMIT %s FOR UPDATE SKIP LOCKED",
                        (list(RETRY_ALL), RETRY_ALL_CHUNK),
                    ).fetchall()
                for row in rows:
                    self._requeue(conn, store.job_from_row(row), outgoing)
                return len(rows)

            done = self._change(work)
            total += done
            if done < RETRY_ALL_CHUNK:
                return total

    def retry_dead_lettered(self, job_id: str) -> job_pb2.Job | None:
        """Re-queues the job as retry() does if it is DEAD_LETTERED, else None (already retried).

        For a dead-letter replay: the status is checked under the row lock, so a job whose dead
        message is replayed twice (or raced with RetryJob) runs again only once.
        """
        job_id = validation.parse_job_id(job_id)

        def work(conn: psycopg.Connection[Any], outgoing: Outgoing) -> job_pb2.Job | None:
            row = self._locked_row(conn, job_id)
            if row["status"] != "dead_lettered":
                return None
            return self._requeue(conn, store.job_from_row(row), outgoing)

        return self._change(work)

    # -- helpers ------------------------------------------------------------------------------

    def _commit_group(self, group: Sequence[Submission]) -> Written[list[Submitted]]:
        """Commits a group of submits as one change: one outcome per submit, in order, and the
        publish of its messages left for after (group_commit.Written).

        An outage (UnavailableError) or a broker known down fails every submit of the group, and
        nothing of it is written.

        PostgreSQL refusing the group's data (not an outage: psycopg.Error other than
        OperationalError) rolled the whole transaction back, so each submit is written again
        alone: a request the database refuses then fails by itself, as it would ungrouped.
        """
        try:
            try:
                return self._record_submissions(group)
            except UnavailableError as error:
                if not isinstance(error.__cause__, psycopg.errors.DeadlockDetected):
                    raise
                # Two groups took the same idempotency keys in opposite orders and PostgreSQL
                # rolled this one back: written again, it finds the other's rows committed.
                return self._record_submissions(group)
        except psycopg.Error:
            if len(group) == 1:
                raise
        outcomes: list[list[Submitted] | Exception] = []
        for submission in group:
            try:
                alone = self._record_submissions([submission])
                alone.then()
                outcomes.extend(alone.outcomes)
            except Exception as error:  # this submit's own failure, for its caller alone
                outcomes.append(error)
        return Written(outcomes)

    def _record_submissions(self, group: Sequence[Submission]) -> Written[list[Submitted]]:
        """The submits' jobs in one multi-row insert (idempotency keys answered as if the submits
        ran one after another) and their messages in one outbox entry, committed; then (left to
        the caller) one publish."""

        def work(conn: psycopg.Connection[Any], outgoing: Outgoing) -> list[list[Submitted]]:
            new_jobs = [job for submission in group for job in submission.jobs]
            inserted = group_commit.split(
                store.insert_jobs(conn, new_jobs), [len(s.jobs) for s in group]
            )
            results: list[list[Submitted]] = []
            for submission, rows in zip(group, inserted, strict=True):
                mine = []
                for spec, (job, created) in zip(submission.specs, rows, strict=True):
                    if created:
                        event = self._created_event(job, spec, submission.now)
                        outgoing.messages.append(work_message(job, attempt=1))
                        outgoing.events.append(event)
                        event_id = event.event_id  # = ids.event_id(job.id, 1), made once
                    else:
                        event_id = ids.event_id(job.id, 1)
                    mine.append(Submitted(job.id, event_id, job.status, not created))
                results.append(mine)
            return results

        results, deliver = self._record(work)
        return Written(results, deliver)

    def _change(self, work: Callable[[psycopg.Connection[Any], Outgoing], T]) -> T:
        """Runs `work` in one transaction with an outbox entry for the messages it adds, then
        sends them; a broker known to be down refuses the change before it is written."""
        result, deliver = self._record(work)
        deliver()
        return result

    def _record(
        self, work: Callable[[psycopg.Connection[Any], Outgoing], T]
    ) -> tuple[T, Callable[[], None]]:
        """`_change` up to its commit; the rest (sending the messages) is returned."""
        try:
            self._broker.ensure_connected()
        except BrokerUnavailableError as error:
            raise UnavailableError(str(error)) from error
        outgoing = Outgoing()
        messages: list[Message] = []

        def with_outbox(conn: psycopg.Connection[Any]) -> tuple[T, int | None]:
            result = work(conn, outgoing)
            messages[:] = outgoing.all()
            return result, self._outbox.record(conn, messages) if messages else None

        result, entry = self._in_transaction(with_outbox)

        def deliver() -> None:
            if entry is not None:
                # Committed: the change stands even if this publish fails (the relay sends it).
                self._outbox.deliver(entry, messages)

        return result, deliver

    def _in_transaction(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Runs `work` in one transaction; backend failures become UnavailableError."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.OperationalError as error:
            raise UnavailableError(f"database unavailable: {error}") from error

    def _locked_row(self, conn: psycopg.Connection[Any], job_id: str) -> dict[str, Any]:
        row = store.get_row(conn, job_id, for_update=True)
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        return row

    def _update(
        self,
        conn: psycopg.Connection[Any],
        job_id: str,
        assignments: str,
        params: Sequence[object] = (),
        *,
        bump: bool = True,
    ) -> dict[str, Any]:
        """Updates a locked row; `assignments` is SQL from this module, values go in `params`."""
        version = ", version = version + 1" if bump else ""
        # Only constant SQL from this module is interpolated; every value is a parameter.
        sql = (
            f"UPDATE jobs SET {assignments}, updated_at = now(){version} WHERE id = %s RETURNING *"  # noqa: S608
        )
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(sql.encode(), (*params, job_id)).fetchone()
        assert row is not None  # the row is locked by this transaction
        return row

    def _requeue(
        self, conn: psycopg.Connection[Any], job: job_pb2.Job, outgoing: Outgoing
    ) -> job_pb2.Job:
        row = self._update(
            conn,
            job.id,
            "status = 'pending', max_attempts = attempts + %s, cancel_requested = false,"
            " finished_at = NULL, next_attempt_at = NULL, last_error = '', worker = '',"
            " lease_until = NULL",
            (retry_budget(job, self._limits),),
        )
        requeued = store.job_from_row(row)
        retry = event_pb2.JobRetryScheduled(attempt=requeued.attempts)
        retry.delay.FromSeconds(0)
        retry.next_attempt_at.FromDatetime(row["updated_at"])
        envelope = self._event(row, job_retry_scheduled=retry)
        outgoing.messages.append(work_message(requeued, requeued.attempts + 1))
        outgoing.events.append(envelope)
        return requeued

    def _event(self, row: dict[str, Any], **payload: object) -> event_pb2.EventEnvelope:
        return events.envelope(
            job_id=str(row["id"]),
            version=row["version"],
            occurred_at=row["updated_at"],
            correlation_id=row["correlation_id"],
            producer=self._producer,
            **payload,
        )

    def _new_job(
        self, spec: job_pb2.JobSpec, correlation_id: str, created_at: Timestamp
    ) -> job_pb2.Job:
        resolved = validation.resolve(spec, self._limits)
        return job_pb2.Job(
            id=ids.new_job_id(),
            type=spec.type,
            payload=spec.payload,
            priority=spec.priority,
            status=job_pb2.JOB_STATUS_PENDING,
            max_attempts=resolved.max_attempts,
            timeout=resolved.timeout,
            idempotency_key=spec.idempotency_key,
            correlation_id=correlation_id,
            created_at=created_at,
            updated_at=created_at,
        )

    def _created_event(
        self, job: job_pb2.Job, spec: job_pb2.JobSpec, now: datetime
    ) -> event_pb2.EventEnvelope:
        created = event_pb2.JobCreated(
            spec=spec, max_attempts=job.max_attempts, timeout=job.timeout
        )
        return events.envelope(
            job_id=job.id,
            version=1,
            occurred_at=now,
            correlation_id=job.correlation_id,
            producer=self._producer,
            job_created=created,
        )


class Jobs(Protocol):
    """What the HTTP and gRPC front ends need (JobService; a fake in their unit tests)."""

    def submit(self, specs: Sequence[job_pb2.JobSpec], correlation_id: str) -> list[Submitted]: ...
    def get(self, job_id: str) -> job_pb2.Job: ...
    def cancel(self, job_id: str, reason: str) -> tuple[job_pb2.Job, str]: ...
    def retry(self, job_id: str) -> tuple[job_pb2.Job, str]: ...
    def retry_failed(self) -> int: ...
