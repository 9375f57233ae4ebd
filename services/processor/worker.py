"""Handling one work message, following the delivery rules of services/README.md.

Every step is: lock the row, decide, write the transition, commit; then publish its effects
(events, retry or dead-letter message) with confirms; the caller acks last. A crash anywhere
leaves the message unacked, and its redelivery replays the missing effects (same event ids).
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    EVENT_MESSAGE_TYPE,
    JOB_MESSAGE_TYPE,
    VERSION_HEADER,
)
from services.jobstore import store
from services.jobtypes import registry
from services.processor import metrics, transitions
from services.processor.cancels import CancelRegistry
from services.processor.config import ProcessorConfig
from services.processor.decide import Action, RowState, Step, after_attempt, decide
from services.processor.jobevents import MAX_ATTEMPTS_EXHAUSTED, event, last_event
from services.processor.poison import (
    PoisonMessageError,
    WorkMessage,
    parse_work_message,
)
from services.processor.resources import Database, Publisher, properties
from services.processor.retry import retry_delay_ms, round_significant
from services.processor.runner import AttemptResult, run_attempt

log = logging.getLogger(__name__)
Row = dict[str, Any]


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

    def close(self) -> None:
        self._db.close()
        self._publisher.close()

    def handle(self, body: bytes, headers: dict[str, object] | None) -> Disposition:
        try:
            message = parse_work_message(body, headers)
        except PoisonMessageError as poison:
            metrics.POISON.labels(poison.kind).inc()
            log.warning("rejecting poison message: %s", poison.reason)
            if poison.job is not None:
                with correlation(poison.job.correlation_id):
                    self._dead_letter_known_row(poison.job.id, poison.reason)
            return Disposition.REJECT
        with correlation(message.job.correlation_id):
            self._handle(message, body)
        return Disposition.ACK

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
        if row is None:  # the gateway published, then crashed before its commit
            store.insert_job(conn, job)
            row = store.get_row(conn, job.id, for_update=True)
            assert row is not None
        action = decide(RowState.from_row(row), attempt, now)
        log.info("job %s attempt %d: %s (status %s)", job.id, attempt, action.value, row["status"])
        if action is Action.RUN:
            # Eligible since creation, the end of the backoff, or an operator's requeue.
            eligible_since = (
                row["created_at"] if attempt == 1 else row["next_attempt_at"] or row["updated_at"]
            )
            started = transitions.start_attempt(
                conn, job.id, attempt=attempt, worker=self.identity, now=now, lease=self._lease
            )
            payload = event_pb2.JobStarted(attempt=attempt, worker=self.identity)
            queue_wait = max(now - (eligible_since or now), timedelta(0))
            payload.queue_wait.FromTimedelta(queue_wait)
            return Effects(
                [event(started, job_started=payload)],
                counters=[metrics.STARTED],
                observations=[(metrics.QUEUE_WAIT, queue_wait.total_seconds())],
                started=started,
            )
        if action is Action.REPLAY:
            return self._replay(conn, row, attempt)
        if action is Action.CANCEL:
            row = transitions.set_status(conn, job.id, job_pb2.JOB_STATUS_CANCELLED, now)
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

        payload = json_format.MessageToDict(job.payload)
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
        ours = (
            row is not None
            and row["status"] == "running"
            and row["attempts"] == attempt
            and row["worker"] == self.identity
        )
        if row is None or not ours:
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
        for envelope in effects.events:
            self._publish_event(envelope)

    def _last_event(self, conn: store.Conn, row: Row) -> list[event_pb2.EventEnvelope]:
        envelope = last_event(row, transitions.last_attempt(conn, str(row["id"])))
        return [] if envelope is None else [envelope]

    def _publish(self, effects: Effects, message: WorkMessage, body: bytes) -> None:
        for envelope in effects.events:
            self._publish_event(envelope)
        job = message.job
        if effects.retry is not None:
            attempt, delay_ms = effects.retry
            headers = {ATTEMPT_HEADER: attempt, VERSION_HEADER: CONTRACT_MAJOR}
            self._publisher.publish(
                topology.RETRY_EXCHANGE,
                topology.retry_queue(delay_ms),
                body,
                properties(headers=headers, message_type=JOB_MESSAGE_TYPE, priority=job.priority),
                retry_delay_ms=delay_ms,
            )
        if effects.dead_reason is not None:
            headers = {
                "x-reason": effects.dead_reason,
                "x-job-id": job.id,
                "x-attempts": message.attempt,
                VERSION_HEADER: CONTRACT_MAJOR,
            }
            self._publisher.publish(
                topology.DEAD_EXCHANGE,
                "",
                body,
                properties(headers=headers, message_type=JOB_MESSAGE_TYPE, priority=job.priority),
            )
        for counter in effects.counters:
            counter.labels(job.type).inc()
        for histogram, seconds in effects.observations:
            histogram.labels(job.type).observe(seconds)

    def _publish_event(self, envelope: event_pb2.EventEnvelope) -> None:
        self._publisher.publish(
            topology.EVENTS_EXCHANGE,
            events.routing_key(envelope),
            envelope.SerializeToString(),
            properties(message_id=envelope.event_id, message_type=EVENT_MESSAGE_TYPE),
        )
