"""ListQueues from the RabbitMQ management API: the system's queues and their backlog."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from typing import Any

from observatory.readmodel.v1 import read_model_pb2

from services.common import topology
from services.common.http_json import get_json

_FIXED = {topology.WORK_QUEUE, topology.DEAD_QUEUE, *topology.METRICS_ENGINE_QUEUES}


def is_system_queue(name: str) -> bool:
    return name in _FIXED or name.startswith("jobs.retry.")


def split_credentials(url: str) -> tuple[str, tuple[str, str]]:
    """("http://host:port", (user, password)) from "http://user:password@host:port"."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl().rstrip("/"), (user, password)


def to_queue(data: dict[str, Any], now: datetime) -> read_model_pb2.Queue:
    queue = read_model_pb2.Queue(
        name=data["name"],
        depth=int(data.get("messages_ready", 0)),
        unacknowledged=int(data.get("messages_unacknowledged", 0)),
        consumers=int(data.get("consumers", 0)),
        dead_letter=data["name"] == topology.DEAD_QUEUE,
    )
    queue.observed_at.FromDatetime(now)
    # Known only when producers stamp the AMQP timestamp property; unset otherwise.
    head = data.get("head_message_timestamp")
    if isinstance(head, int) and queue.depth:
        queue.oldest_message_age.FromSeconds(max(0, int(now.timestamp()) - head))
    return queue


def list_queues(management_url: str, timeout: float = 5.0) -> read_model_pb2.ListQueuesResponse:
    base, auth = split_credentials(management_url)
    data = get_json(f"{base}/api/queues/%2F", auth=auth, timeout=timeout)
    now = datetime.now(UTC)
    queues = sorted(
        (to_queue(q, now) for q in data if is_system_queue(q["name"])), key=lambda q: q.name
    )
    return read_model_pb2.ListQueuesResponse(queues=queues)
