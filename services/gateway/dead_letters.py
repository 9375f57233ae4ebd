"""Replaying the dead-letter queue (jobs.dead): re-queue dead-lettered jobs, keep poison.

One pass takes at most as many messages as the queue held when it started, and holds the ones
it keeps unacknowledged until the end (a requeued message goes back to the head of the queue, so
returning it at once would hand it straight back). Per message: re-queue the job (its transaction
commits with the work message and event confirmed), then ack the dead message; a crash between
the two leaves a message that the next pass finds stale, so a replay never runs a job twice.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import pika
import pika.exceptions
from google.protobuf.message import DecodeError
from observatory.gateway.v1 import gateway_pb2
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel

from services.common import amqp, topology
from services.common.config import redact
from services.common.wire import JOB_MESSAGE_TYPE, VERSION_HEADER
from services.gateway.service import NotFoundError, UnavailableError

log = logging.getLogger(__name__)

_BROKER_FAILURES = (pika.exceptions.AMQPError, OSError)


@dataclass(frozen=True)
class Kept:
    """A message left in the queue."""

    reason: str  # why the replay did not take it
    dead_letter_reason: str = ""  # why it was dead-lettered (x-reason / x-death)
    job_id: str = ""


@dataclass
class ReplayResult:
    replayed_job_ids: list[str] = field(default_factory=list)
    stale: int = 0
    kept: list[Kept] = field(default_factory=list)


# JobService.retry_dead_lettered: job id -> the job re-queued, or None if not DEAD_LETTERED.
Requeue = Callable[[str], object | None]


def dead_letter_reason(headers: Mapping[str, object]) -> str:
    """Why the message was dead-lettered: the processor's x-reason, else RabbitMQ's x-death."""
    reason = headers.get("x-reason")
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    if isinstance(reason, str) and reason:
        return reason
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        death = deaths[0]
        why = death.get("reason", b"")
        queue = death.get("queue", b"")
        why = why.decode() if isinstance(why, bytes) else str(why)
        queue = queue.decode() if isinstance(queue, bytes) else str(queue)
        return f"{why} from {queue}" if queue else why
    return ""


def job_of(properties: pika.BasicProperties, body: bytes) -> tuple[str | None, str]:
    """(job id, "") when the message is a work message of a job, else (None, why not)."""
    headers = properties.headers or {}
    if properties.type != JOB_MESSAGE_TYPE:
        return None, f"not a job message: type {properties.type or 'unset'!r}"
    version = headers.get(VERSION_HEADER)
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    if version is not None and str(version) != "1":
        return None, f"not a job message: contract version {version!r}"
    try:
        job = job_pb2.Job.FromString(body)
    except DecodeError:
        return None, "not a job message: undecodable body"
    try:
        return str(uuid.UUID(job.id)), ""
    except ValueError:
        return None, f"not a job message: job id {job.id[:40]!r} is not a UUID"


class DeadLetterReplay(Protocol):
    """What ReplayDeadLetters needs (dead_letters.DeadLetters; a fake in unit tests)."""

    def replay(self) -> ReplayResult: ...


def replay_response(result: ReplayResult) -> gateway_pb2.ReplayDeadLettersResponse:
    return gateway_pb2.ReplayDeadLettersResponse(
        replayed=len(result.replayed_job_ids),
        stale=result.stale,
        kept=len(result.kept),
        replayed_job_ids=result.replayed_job_ids,
        kept_messages=[
            gateway_pb2.KeptDeadLetter(
                reason=k.reason, dead_letter_reason=k.dead_letter_reason, job_id=k.job_id
            )
            for k in result.kept
        ],
    )


class DeadLetters:
    """Replays jobs.dead through a connection of its own, opened per call (replay is rare)."""

    def __init__(self, url: str, requeue: Requeue, *, timeout: float) -> None:
        self._url = url
        self._requeue = requeue
        self._timeout = timeout

    def replay(self) -> ReplayResult:
        try:
            connection = amqp.connect(
                self._url, connection_name="gateway-replay", timeout=self._timeout
            )
        except _BROKER_FAILURES as error:
            log.warning("broker %s unreachable: %r", redact(self._url), error)
            raise UnavailableError(f"broker unreachable: {error!r}") from error
        try:
            return self._replay(connection.channel())
        except _BROKER_FAILURES as error:
            raise UnavailableError(f"broker failed during replay: {error!r}") from error
        finally:
            with contextlib.suppress(*_BROKER_FAILURES):
                connection.close()  # returns whatever is still unacked (kept) to the queue

    def _replay(self, channel: BlockingChannel) -> ReplayResult:
        topology.declare(channel)
        held = channel.queue_declare(topology.DEAD_QUEUE, passive=True).method.message_count
        result = ReplayResult()
        kept_tags: list[int] = []
        try:
            for _ in range(held):
                method, properties, body = channel.basic_get(topology.DEAD_QUEUE)
                if method is None:
                    break
                kept = self._one(properties, body, result)
                if kept is None:
                    channel.basic_ack(method.delivery_tag)
                else:
                    result.kept.append(kept)
                    kept_tags.append(method.delivery_tag)
        finally:
            for tag in kept_tags:
                channel.basic_nack(tag, requeue=True)
        log.info(
            "dead-letter replay: %d replayed, %d stale, %d kept",
            len(result.replayed_job_ids),
            result.stale,
            len(result.kept),
        )
        return result

    def _one(
        self, properties: pika.BasicProperties, body: bytes, result: ReplayResult
    ) -> Kept | None:
        """Handles one message; the Kept record when it must stay in the queue."""
        why_dead = dead_letter_reason(properties.headers or {})
        job_id, not_a_job = job_of(properties, body)
        if job_id is None:
            return Kept(not_a_job, why_dead)
        try:
            requeued = self._requeue(job_id)
        except NotFoundError:
            return Kept(f"unknown job {job_id}", why_dead, job_id)
        if requeued is None:
            result.stale += 1
        else:
            result.replayed_job_ids.append(job_id)
        return None
