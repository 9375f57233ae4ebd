"""Recognising work messages no processor can handle (poison), before touching any state."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from observatory.jobs.v1 import job_pb2

from services.common.wire import ATTEMPT_HEADER, CONTRACT_MAJOR, VERSION_HEADER
from services.jobtypes import registry


class PoisonMessageError(Exception):
    """The message can never be processed; `kind` is a bounded label for metrics."""

    def __init__(self, kind: str, reason: str, job: job_pb2.Job | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.job = job  # set when the body decoded (so its row can be marked)


@dataclass(frozen=True)
class WorkMessage:
    job: job_pb2.Job
    attempt: int


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def parse_work_message(body: bytes, headers: Mapping[str, object] | None) -> WorkMessage:
    """The job and attempt of a work message; raises PoisonMessageError saying what is wrong."""
    headers = headers or {}
    for name in (VERSION_HEADER, ATTEMPT_HEADER):
        if name not in headers:
            raise PoisonMessageError("missing_header", f"missing header {name}")
    version = _text(headers[VERSION_HEADER])
    if version != CONTRACT_MAJOR:
        raise PoisonMessageError(
            "contract_version", f"{VERSION_HEADER}: expected {CONTRACT_MAJOR!r}, got {version!r}"
        )
    attempt = headers[ATTEMPT_HEADER]
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise PoisonMessageError(
            "bad_header", f"{ATTEMPT_HEADER}: expected an integer >= 1, got {attempt!r}"
        )
    job = job_pb2.Job()
    try:
        job.ParseFromString(body)
    except DecodeError:
        raise PoisonMessageError("undecodable", "body is not an observatory.jobs.v1.Job") from None
    # Arbitrary bytes can decode as a protobuf; a real job always has a UUID id and a type.
    try:
        uuid.UUID(job.id)
    except ValueError:
        raise PoisonMessageError("undecodable", "body is not a Job: id is not a UUID") from None
    if registry.get(job.type) is None:
        raise PoisonMessageError("unknown_type", f"unknown job type {job.type!r}", job)
    if job.max_attempts < 1 or job.timeout.ToMilliseconds() <= 0:
        raise PoisonMessageError("undecodable", "body is not a Job: no max_attempts or timeout")
    return WorkMessage(job, attempt)
