"""Handling one work message, following the delivery rules of services/README.md.

Every step is: lock the row, decide, write the transition, commit; then publish its effects
(events, retry or dead-letter message) with confirms; the caller acks last. A crash anywhere
leaves the message unacked, and its redelivery replays the missing effects (same event ids).
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from google.protobuf import json_format
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from prometheus_client import Counter, Histogram

from services.common import events, topology
from services.common.logs import correlation
from services.common.wire import (
    ATTEMPT_HEADER,
    CONTRACT_MAJOR,
    JOB_MESSAGE_TYPE,
    VERSION_HEADER,
)
from services.jobstore import store
from services.jobtypes import registry
from services.processor import metrics, transitions
from services.processor.attempts import Attempt, AttemptPool
from services.processor.batching import first_per_key
from services.processor.cancels import CancelRegistry
from services.processor.config import ProcessorConfig
from services.processor.decide import Action, RowState, Step, after_attempt, decide
from services.processor.jobevents import (
    MAX_ATTEMPTS_EXHAUSTED,
    completed_event,
    duration,
    event,
    last_event,
)
from services.processor.poison import (
    PoisonMessageError,
    WorkMessage,
    parse_work_message,
)
from services.processor.resources import Database, Outgoing, Publisher, properties
from services.processor.retry import retry_delay_ms, round_significant
from services.processor.runner import AttemptResult, run_attempt

log = logging.getLogger(__name__)
Row = dict[str, Any]


@dataclass(frozen=True)
class Incoming:
    """A work message as delivered: its body and AMQP headers."""

    body: bytes
    headers: dict[str, object] | None


class Disposition(enum.Enum):
    ACK = "ack"
    REJECT = "reject"  # poison: to jobs.dead through the work queue's dead-letter exchange


@dataclass
class Effects:
    """What a committed transition still has to publish, and what it counts."""

    events: list[event_pb2.EventEnvelope] = field(default_factory=list)
    retry: tuple[int, int] | None = None  # (attempt, delay in ms) of a work message to delay
    dead_reason: str | None = None  # publish the message to the dead-letter exchange
    counters: list[Counter] = field(default_factory=list)
    observations: list[tuple[Histogram, float]] = field(default_factory=list)  # (histogram, s)
    started: Row | None = None  # the row of an attempt that just started


Indexed = tuple[int, WorkMessage]  # (index in the batch, message)
Settle = Callable[[Sequence[tuple[int, Disposition]]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Worker:
    """One worker thread's handler, with its own database connection and publisher."""

    def __init__(
        self, config: ProcessorConfig, stop: threading.Event, cancels: CancelRegistry, name: str
    ) -> None:
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{name}"
        self._config = config
        self._cancels = cancels
        self._lease = timedelta(seconds=config.lease_seconds)
        self._db = Database(config.postgres_dsn, stop, f"processor {name}")
        self._publisher = Publisher(config.amqp_url, stop, f"processor {self.identity}")
        self._attempts = AttemptPool(config.batch_size)

    def close(self) -> None:
        self._attempts.close()
        self._db.close()
        self._publisher.close()

    def handle(self, body: bytes, headers: dict[str, object] | None) -> Disposition:
        try:
            message = parse_work_message(body, headers)
        except PoisonMessageError as poison:
            self._reject(poison)
            return Disposition.REJECT
        with correlation(message.job.correlation_id):
            self._handle(message, body)
        return Disposition.ACK

    def handle_batch(self, batch: Sequence[Incoming], settle: Settle) -> None:
        """Handles a micro-batch of work messages: one transaction starts every runnable job,
        their events are published with one confirm wait, the jobs run concurrently, and the
        ones that end close together are concluded in one transaction and published likewise.
        `settle` gets (index in `batch`, disposition) pairs as soon as their effects are
        confirmed; anything not settled when this raises is left for redelivery."""
        parsed: list[Indexed] = []
        for index, item in enumerate(batch):
            try:
                parsed.append((index, parse_work_message(item.body, item.headers)))
            except PoisonMessageError as poison:
                self._reject(poison)
                settle([(index, Disposition.REJECT)])
        split = first_per_key(parsed, key=lambda indexed: indexed[1].job.id)
        if split.first:
            self._handle_many(split.first, batch, settle)
        for index, message in split.repeats:  # after the batch: its rows are no longer locked
            with correlation(message.job.correlation_id):
                self._handle(message, batch[index].body)
            settle([(index, Disposition.ACK)])

    def _reject(self, poison: PoisonMessageError) -> None:
        metrics.POISON.labels(poison.kind).inc()
        log.warning("rejecting poison message: %s", poison.reason)
        if poison.job is not None:
            with correlation(poison.job.correlation_id):
                self._dead_letter_known_row(poison.job.id, poison.reason)

    def _handle_many(self, items: list[Indexed], batch: Sequence[Incoming], settle: Settle) -> None:
        with contextlib.ExitStack() as listening:
            # Listen for cancel broadcasts from before the attempts start (as in _handle).
            signals: dict[int, threading.Event] = {}
            for index, message in items:
                signals[index] = threading.Event()
                listening.enter_context(self._cancels.handling(message.job.id, signals[index]))
            begun = self._db.transaction(lambda conn: self._begin_many(conn, items))
            self._publish_many(
                [(begun[index], message, batch[index].body) for index, message in items]
            )
            settle([(index, Disposition.ACK) for index, _ in items if begun[index].started is None])
            running = {index: message for index, message in items if begun[index].started}
            if running:
                self._run_many(running, signals, batch, settle)

    def _run_many(
        self,
        running: dict[int, WorkMessage],
        signals: dict[int, threading.Event],
        batch: Sequence[Incoming],
        settle: Settle,
    ) -> None:
        """Runs the started attempts side by side; concludes them wave by wave."""
        attempts = []
        for index, message in running.items():
            job_type = registry.get(message.job.type)
            assert job_type is not None  # poison detection checked it
            ctx = registry.JobContext(
                job_id=message.job.id,
                attempt=message.attempt,
                max_attempts=message.job.max_attempts,
                deadline=time.monotonic() + message.job.timeout.ToMilliseconds() / 1000,
                cancelled=signals[index],
            )
            attempts.append(Attempt(index, job_type.run, ctx, payload_dict(message.job)))
        metrics.IN_FLIGHT.inc(len(attempts))
        waves = self._attempts.run(
            attempts,
            linger_s=self._config.batch_wait_ms / 1000,
            interval=self._config.lease_seconds / 3,
            heartbeat=lambda keys: self._renew_leases({key: running[key] for key in keys}, signals),
        )
        left = len(attempts)
        try:
            for wave in waves:
                metrics.IN_FLIGHT.dec(len(wave))
                left -= len(wave)
                self._conclude_wave([(i, running[i], result) for i, result in wave], batch, settle)
        finally:
            metrics.IN_FLIGHT.dec(left)  # given up (shutdown): left for redelivery

    def _conclude_wave(
        self,
        results: list[tuple[int, WorkMessage, AttemptResult]],
        batch: Sequence[Incoming],
        settle: Settle,
    ) -> None:
        # One labels() lookup per job type of the wave, not per job.
        durations = {
            kind: metrics.DURATION.labels(kind) for kind in {m.job.type for _, m, _ in results}
        }
        for _, message, result in results:
            durations[message.job.type].observe(result.seconds)
            log.log(
                logging.DEBUG if result.error == "" else logging.INFO,
                "job %s attempt %d ended: %s",
                message.job.id,
                message.attempt,
                result,
            )
        finished = self._db.transaction(partial(self._finish_many, results=results))
        self._publish_many([(finished[i], m, batch[i].body) for i, m, _ in results])
        settle([(index, Disposition.ACK) for index, _, _ in results])

    def _renew_leases(
        self, running: dict[int, WorkMessage], signals: dict[int, threading.Event]
    ) -> None:
        """Extends the leases of the batch's running attempts in one transaction; stops those
        with a cancel requested or no longer ours."""
        until = utcnow() + self._lease

        def renew(conn: store.Conn) -> dict[int, bool | None]:
            return {
                index: transitions.renew_lease(
                    conn, message.job.id, message.attempt, self.identity, until
                )
                for index, message in running.items()
            }

        for index, cancel in self._db.transaction(renew).items():
            if cancel is None or cancel:
                signals[index].set()

    def _begin_many(self, conn: store.Conn, items: list[Indexed]) -> dict[int, Effects]:
        """`_begin` for a batch: the RUN decisions in two statements, any other one alone."""
        now = utcnow()
        rows = transitions.lock_to_start(conn, [message.job.id for _, message in items])
        effects: dict[int, Effects] = {}
        runs: dict[int, tuple[WorkMessage, Row]] = {}
        for index, message in items:
            row = rows.get(message.job.id)
            if (
                row is not None
                and decide(RowState.from_row(row), message.attempt, now) is Action.RUN
            ):
                runs[index] = (message, row)
            else:
                with correlation(message.job.correlation_id):
                    effects[index] = self._begin(conn, message)
        started = transitions.start_attempts(
            conn,
            {message.job.id: message.attempt for message, _ in runs.values()},
            worker=self.identity,
            now=now,
            lease=self._lease,
        )
        for index, (message, row) in runs.items():
            effects[index] = self._started(row, started[message.job.id], message.attempt, now)
        if runs:
            log.info("started %d jobs of a batch of %d", len(runs), len(items))
        return effects

    def _finish_many(
        self, conn: store.Conn, results: Sequence[tuple[int, WorkMessage, AttemptResult]]
    ) -> dict[int, Effects]:
        """`_finish` for attempts that ended together: successes of attempts still ours in two
        statements, any other outcome alone."""
        now = utcnow()
        rows = transitions.lock_to_finish(conn, [message.job.id for _, message, _ in results])
        effects: dict[int, Effects] = {}
        succeeded: dict[int, WorkMessage] = {}
        for index, message, result in results:
            row = rows.get(message.job.id)
            if (
                result.outcome == job_pb2.ATTEMPT_OUTCOME_SUCCEEDED
                and row is not None
                and self._ours(row, message.attempt)
            ):
                succeeded[index] = message
            else:
                with correlation(message.job.correlation_id):
                    effects[index] = self._finish(conn, message, result)
        completed = transitions.complete_attempts(
            conn, {message.job.id: message.attempt for message in succeeded.values()}, now
        )
        for index, message in succeeded.items():
            row, ran = completed[message.job.id]
            effects[index] = Effects(
                [completed_event(row, ran)],
                counters=[metrics.COMPLETED],
                observations=[(metrics.END_TO_END, (now - row["created_at"]).total_seconds())],
            )
        return effects

    def _ours(self, row: Row, attempt: int) -> bool:
        """Whether the locked row still runs attempt `attempt` on this worker."""
        return bool(
            row["status"] == "running"
            and row["attempts"] == attempt
            and row["worker"] == self.identity
        )

    def _handle(self, message: WorkMessage, body: bytes) -> None:
        # Listen for cancel broadcasts from before the attempt starts, so none falls in between.
        cancelled = threading.Event()
        with self._cancels.handling(message.job.id, cancelled):
            effects = self._db.transaction(lambda conn: self._begin(conn, message))
            self._publish(effects, message, body)
            if effects.started is None:
                return
            result = self._run(message, cancelled)
        effects = self._db.transaction(lambda conn: self._finish(conn, message, result))
        self._publish(effects, message, body)

    def _begin(self, conn: store.Conn, message: WorkMessage) -> Effects:
        job, attempt, now = message.job, message.attempt, utcnow()
        row = store.get_row(conn, job.id, for_update=True)
        if row is None:  # the gateway published, then crashed or rolled back before its commit
            # Not created: either the gateway's commit of this job landed meanwhile (the insert
            # waited for it), or the key belongs to another job.
            stored, _ = store.insert_job(conn, job)
            if stored.id != job.id:
                return self._drop_orphan(job, stored)
            row = store.get_row(conn, job.id, for_update=True)
            assert row is not None  # inserted by this transaction or committed by the gateway
        return self._begin_row(conn, row, attempt, now)

    def _begin_row(self, conn: store.Conn, row: Row, attempt: int, now: datetime) -> Effects:
        """Decides what the message for `attempt` does to the locked row, and does it."""
        job_id = str(row["id"])
        action = decide(RowState.from_row(row), attempt, now)
        log.info("job %s attempt %d: %s (status %s)", job_id, attempt, action.value, row["status"])
        if action is Action.RUN:
            started = transitions.start_attempt(
                conn, job_id, attempt=attempt, worker=self.identity, now=now, lease=self._lease
            )
            return self._started(row, started, attempt, now)
        if action is Action.REPLAY:
            return self._replay(conn, row, attempt)
        if action is Action.CANCEL:
            row = transitions.set_status(conn, job_id, job_pb2.JOB_STATUS_CANCELLED, now)
            return Effects(self._last_event(conn, row), counters=[metrics.CANCELLED])
        if action is Action.ABANDON:
            error = f"abandoned: worker {row['worker']} stopped renewing its lease"
            abandoned = AttemptResult(job_pb2.ATTEMPT_OUTCOME_ABANDONED, error)
            # The vanished worker may have died before publishing job.started: replay it.
            replayed = self._last_event(conn, row)
            effects = self._conclude(conn, row, attempt, abandoned, now)
            effects.events[:0] = replayed
            effects.counters.append(metrics.ABANDONED)
            return effects
        if action is Action.REDELAY:
            # Look again a little after the lease runs out; never run the attempt twice at once.
            left_ms = (row["lease_until"] - now).total_seconds() * 1000
            return Effects(retry=(attempt, round_significant(left_ms * 1.1 + 50)))
        return Effects()  # Action.DROP

    def _drop_orphan(self, job: job_pb2.Job, owner: job_pb2.Job) -> Effects:
        """A work message of a job PostgreSQL never committed whose idempotency key now belongs
        to another job: the gateway rolled this one back and answered UNAVAILABLE, and the
        client resubmitted the key and was given `owner`. Running it would run the key twice;
        leaving it unacked would block the queue: it is acked, counted and logged."""
        metrics.ORPHANS_DROPPED.labels(metrics.ORPHAN_KEY_TAKEN).inc()
        log.warning(
            "dropping orphan work message of job %s: its idempotency key belongs to job %s",
            job.id,
            owner.id,
        )
        return Effects()

    def _started(self, before: Row, started: Row, attempt: int, now: datetime) -> Effects:
        """The effects of starting attempt `attempt`: job.started, with the time it waited."""
        # Eligible since creation, the end of the backoff, or an operator's requeue.
        eligible_since = (
            before["created_at"]
            if attempt == 1
            else before["next_attempt_at"] or before["updated_at"]
        )
        queue_wait = max(now - (eligible_since or now), timedelta(0))
        payload = event_pb2.JobStarted(
            attempt=attempt, worker=self.identity, queue_wait=duration(queue_wait)
        )
        return Effects(
            [event(started, job_started=payload)],
            counters=[metrics.STARTED],
            observations=[(metrics.QUEUE_WAIT, queue_wait.total_seconds())],
            started=started,
        )

    def _replay(self, conn: store.Conn, row: Row, attempt: int) -> Effects:
        effects = Effects(self._last_event(conn, row))
        if row["attempts"] != attempt:
            return effects  # an older message: only the event is worth repeating
        status = store.status_value(row["status"])
        if status == job_pb2.JOB_STATUS_RETRY_SCHEDULED:
            left_ms = (row["next_attempt_at"] - utcnow()).total_seconds() * 1000
            effects.retry = (attempt + 1, round_significant(max(left_ms, 1)))
        elif status == job_pb2.JOB_STATUS_DEAD_LETTERED and row["attempts"] >= row["max_attempts"]:
            effects.dead_reason = MAX_ATTEMPTS_EXHAUSTED
        return effects

    def _run(self, message: WorkMessage, cancelled: threading.Event) -> AttemptResult:
        job, attempt = message.job, message.attempt
        job_type = registry.get(job.type)
        assert job_type is not None  # poison detection checked it
        ctx = registry.JobContext(
            job_id=job.id,
            attempt=attempt,
            max_attempts=job.max_attempts,
            deadline=time.monotonic() + job.timeout.ToMilliseconds() / 1000,
            cancelled=cancelled,
        )

        def heartbeat() -> None:
            until = utcnow() + self._lease
            cancel = self._db.transaction(
                lambda conn: transitions.renew_lease(conn, job.id, attempt, self.identity, until)
            )
            if cancel is None or cancel:  # cancel requested, or the attempt is no longer ours
                ctx.cancelled.set()

        payload = payload_dict(job)
        metrics.IN_FLIGHT.inc()
        try:
            result = run_attempt(
                job_type.run,
                ctx,
                payload,
                heartbeat=heartbeat,
                interval=self._config.lease_seconds / 3,
            )
        finally:
            metrics.IN_FLIGHT.dec()
        metrics.DURATION.labels(job.type).observe(result.seconds)
        log.info("job %s attempt %d ended: %s", job.id, attempt, result)
        return result

    def _finish(self, conn: store.Conn, message: WorkMessage, result: AttemptResult) -> Effects:
        job, attempt = message.job, message.attempt
        row = store.get_row(conn, job.id, for_update=True)
        if row is None or not self._ours(row, attempt):
            last = transitions.last_attempt(conn, job.id)
            if (
                row is not None
                and last is not None
                and last.number == attempt
                and last.worker == self.identity
                and last.outcome != job_pb2.ATTEMPT_OUTCOME_ABANDONED
            ):
                # We concluded it already (a retried transaction whose commit did succeed).
                return self._replay(conn, row, attempt)
            log.warning("job %s attempt %d is no longer ours; result dropped", job.id, attempt)
            return Effects()
        return self._conclude(conn, row, attempt, result, utcnow())

    def _conclude(
        self, conn: store.Conn, row: Row, attempt: int, result: AttemptResult, now: datetime
    ) -> Effects:
        """Records how attempt `attempt` ended and moves the job on (the row is locked)."""
        job_id = str(row["id"])
        transitions.finish_attempt(
            conn,
            job_id,
            attempt=attempt,
            outcome=result.outcome,
            error=result.error,
            now=now,
        )
        step = after_attempt(
            result.outcome,
            retryable=result.retryable,
            attempt=attempt,
            max_attempts=row["max_attempts"],
            cancel_requested=row["cancel_requested"],
        )
        effects = Effects()
        if step is Step.COMPLETE:
            row = transitions.set_status(conn, job_id, job_pb2.JOB_STATUS_COMPLETED, now)
            effects.counters.append(metrics.COMPLETED)
        elif step is Step.CANCEL:
            row = transitions.set_status(conn, job_id, job_pb2.JOB_STATUS_CANCELLED, now)
            effects.counters.append(metrics.CANCELLED)
        elif step is Step.FAIL:
            status = job_pb2.JOB_STATUS_FAILED
            row = transitions.set_status(conn, job_id, status, now, error=result.error)
            effects.counters.append(metrics.FAILED)
        elif step is Step.RETRY:
            delay = retry_delay_ms(
                attempt, base_ms=self._config.retry_base_ms, max_ms=self._config.retry_max_ms
            )
            row = transitions.set_status(
                conn,
                job_id,
                job_pb2.JOB_STATUS_RETRY_SCHEDULED,
                now,
                error=result.error,
                next_attempt_at=now + timedelta(milliseconds=delay),
            )
            effects.retry = (attempt + 1, delay)
            effects.counters.append(metrics.RETRIED)
        else:
            status = job_pb2.JOB_STATUS_DEAD_LETTERED
            row = transitions.set_status(conn, job_id, status, now, error=result.error)
            effects.dead_reason = MAX_ATTEMPTS_EXHAUSTED
            effects.counters.append(metrics.DEAD_LETTERED)
        if step in (Step.COMPLETE, Step.FAIL, Step.DEAD_LETTER):
            end_to_end = (now - row["created_at"]).total_seconds()
            effects.observations.append((metrics.END_TO_END, end_to_end))
        effects.events = self._last_event(conn, row)
        return effects

    def _dead_letter_known_row(self, job_id: str, reason: str) -> None:
        """A job of an unknown type can never run: if the gateway recorded it, say so."""

        def mark(conn: store.Conn) -> Effects:
            row = store.get_row(conn, job_id, for_update=True)
            if row is None or store.status_value(row["status"]) in store.TERMINAL:
                return Effects()
            status = job_pb2.JOB_STATUS_DEAD_LETTERED
            row = transitions.set_status(conn, job_id, status, utcnow(), error=reason)
            return Effects(self._last_event(conn, row))

        effects = self._db.transaction(mark)
        self._publisher.publish_all(event_messages(effects.events))

    def _last_event(self, conn: store.Conn, row: Row) -> list[event_pb2.EventEnvelope]:
        envelope = last_event(row, transitions.last_attempt(conn, str(row["id"])))
        return [] if envelope is None else [envelope]

    def _publish(self, effects: Effects, message: WorkMessage, body: bytes) -> None:
        self._publish_many([(effects, message, body)])

    def _publish_many(self, batch: Sequence[tuple[Effects, WorkMessage, bytes]]) -> None:
        """Publishes the effects of several messages with one confirm wait, then counts them."""
        # The batch's events travel as one message per event type (services/common/events.py).
        outgoing = event_messages([e for effects, _, _ in batch for e in effects.events])
        for effects, message, body in batch:
            outgoing += self._outgoing(effects, message, body)
        self._publisher.publish_all(outgoing)
        counts: collections.Counter[tuple[Counter, str]] = collections.Counter()
        for effects, message, _ in batch:
            for counter in effects.counters:
                counts[counter, message.job.type] += 1
            for histogram, seconds in effects.observations:
                histogram.labels(message.job.type).observe(seconds)
        for (counter, job_type), count in counts.items():  # one locked increment per series
            counter.labels(job_type).inc(count)

    def _outgoing(self, effects: Effects, message: WorkMessage, body: bytes) -> list[Outgoing]:
        """The retry or dead-letter message of one work message (its events go separately)."""
        outgoing: list[Outgoing] = []
        job = message.job
        if effects.retry is not None:
            attempt, delay_ms = effects.retry
            headers = {ATTEMPT_HEADER: attempt, VERSION_HEADER: CONTRACT_MAJOR}
            outgoing.append(
                Outgoing(
                    topology.RETRY_EXCHANGE,
                    topology.retry_queue(delay_ms),
                    body,
                    properties(
                        headers=headers, message_type=JOB_MESSAGE_TYPE, priority=job.priority
                    ),
                    retry_delay_ms=delay_ms,
                )
            )
        if effects.dead_reason is not None:
            headers = {
                "x-reason": effects.dead_reason,
                "x-job-id": job.id,
                "x-attempts": message.attempt,
                VERSION_HEADER: CONTRACT_MAJOR,
            }
            outgoing.append(
                Outgoing(
                    topology.DEAD_EXCHANGE,
                    "",
                    body,
                    properties(
                        headers=headers, message_type=JOB_MESSAGE_TYPE, priority=job.priority
                    ),
                )
            )
        return outgoing


def payload_dict(job: job_pb2.Job) -> dict[str, Any]:
    """The job's payload as the job function gets it (most jobs have none: skip the converter)."""
    return json_format.MessageToDict(job.payload) if job.payload.fields else {}


def event_messages(envelopes: Sequence[event_pb2.EventEnvelope]) -> list[Outgoing]:
    """The events as messages for the events exchange: one batch per event type."""
    return [
        Outgoing(
            topology.EVENTS_EXCHANGE,
            message.routing_key,
            message.body,
            properties(message_id=message.message_id, message_type=message.message_type),
        )
        for message in events.to_messages(envelopes)
    ]
