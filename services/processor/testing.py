"""Test helpers: jobs and work messages exactly as the gateway makes them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel

from services.common import topology
from services.common.wire import ATTEMPT_HEADER, CONTRACT_MAJOR, JOB_MESSAGE_TYPE, VERSION_HEADER
from services.jobstore import store


def make_job(
    job_type: str,
    payload: Mapping[str, Any] | None = None,
    *,
    max_attempts: int = 3,
    timeout: float = 30.0,
    priority: int = 0,
) -> job_pb2.Job:
    job = job_pb2.Job(
        id=str(uuid.uuid4()),
        type=job_type,
        priority=priority,
        status=job_pb2.JOB_STATUS_PENDING,
        max_attempts=max_attempts,
        correlation_id=f"test-{uuid.uuid4().hex[:8]}",
    )
    job.payload.update(dict(payload or {}))
    job.timeout.FromTimedelta(timedelta(seconds=timeout))
    job.created_at.FromDatetime(datetime.now(UTC))
    return job


def publish_work(
    channel: BlockingChannel,
    job: job_pb2.Job,
    *,
    attempt: int = 1,
    body: bytes | None = None,
    headers: Mapping[str, object] | None = None,
) -> None:
    """Publishes a work message (`channel` in confirm mode); `body`/`headers` override for
    poison-message tests."""
    if headers is None:
        headers = {ATTEMPT_HEADER: attempt, VERSION_HEADER: CONTRACT_MAJOR}
    channel.basic_publish(
        topology.JOBS_EXCHANGE,
        topology.WORK_ROUTING_KEY,
        job.SerializeToString() if body is None else body,
        pika.BasicProperties(
            content_type="application/x-protobuf",
            type=JOB_MESSAGE_TYPE,
            headers=dict(headers),
            priority=job.priority,
            delivery_mode=pika.DeliveryMode.Persistent,
        ),
        mandatory=True,
    )


def submit(conn: store.Conn, channel: BlockingChannel, job: job_pb2.Job) -> None:
    """Records the job (committed) and enqueues its first attempt, as the gateway does."""
    with conn.transaction():
        store.insert_job(conn, job)
    publish_work(channel, job)
