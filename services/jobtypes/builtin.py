"""The built-in job types: they simulate real work (waiting, failing, computing) for demos,
tests and benchmarks. Importing this module registers them."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

from services.jobtypes.registry import Field, JobContext, JobError, job_type


@job_type("noop")
def noop(ctx: JobContext, payload: Mapping[str, Any]) -> None:
    """Does nothing: measures the system's own cost per job."""


@job_type("echo", payload={"message": Field(str)})
def echo(ctx: JobContext, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Returns its payload."""
    return dict(payload)


@job_type("sleep", payload={"seconds": Field(float, required=True, minimum=0, maximum=3600)})
def sleep(ctx: JobContext, payload: Mapping[str, Any]) -> None:
    """Waits `seconds` (cancellable, bounded by the job's timeout)."""
    ctx.sleep(float(payload["seconds"]))


@job_type(
    "fail",
    payload={
        "probability": Field(float, minimum=0, maximum=1),
        "until_attempt": Field(int, minimum=0, maximum=1000),
        "message": Field(str),
        "retryable": Field(bool),
    },
)
def fail(ctx: JobContext, payload: Mapping[str, Any]) -> None:
    """Fails on attempts before `until_attempt` (then succeeds), or with `probability`; with
    neither, always. `retryable: false` makes the failure final at once."""
    message = str(payload.get("message", "simulated failure"))
    retryable = bool(payload.get("retryable", True))
    if "until_attempt" in payload:
        if ctx.attempt < int(payload["until_attempt"]):
            raise JobError(f"{message} (attempt {ctx.attempt})", retryable=retryable)
        return
    if "probability" in payload and random.random() >= float(payload["probability"]):
        return
    raise JobError(message, retryable=retryable)


@job_type("cpu", payload={"rounds": Field(int, required=True, minimum=1, maximum=100_000_000)})
def cpu(ctx: JobContext, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Burns CPU: `rounds` SHA-256 hashes, checking timeout and cancellation as it goes."""
    digest = b""
    for done in range(int(payload["rounds"])):
        if done % 10_000 == 0:
            ctx.check()
        digest = hashlib.sha256(digest).digest()
    return {"digest": digest.hex()}
