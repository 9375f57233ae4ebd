"""The job type registry: adding a job type is one decorated function.

    @job_type("resize", payload={"width": Field(int, minimum=1)})
    def resize(ctx: JobContext, payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
        ...

The gateway validates submissions against the declared payload fields (unknown type, missing or
mistyped field -> an error naming it); the processor runs the function with a `JobContext` whose
`sleep()` and `check()` honour the job's timeout and cancellation cooperatively.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class JobCancelledError(Exception):
    """Raised inside a job function by `JobContext.check()` once cancellation was requested."""


class JobTimeoutError(Exception):
    """Raised inside a job function by `JobContext.check()` once its timeout has passed."""


class JobError(Exception):
    """A job function's own failure; `retryable=False` skips the remaining attempts."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class JobContext:
    """What a running job may know and use: its attempt and a cooperative stop signal."""

    job_id: str
    attempt: int
    max_attempts: int
    deadline: float  # time.monotonic() value
    cancelled: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelledError("cancelled while running")
        if time.monotonic() >= self.deadline:
            raise JobTimeoutError("timed out")

    def sleep(self, seconds: float) -> None:
        """Sleeps, waking early (with the matching exception) on cancellation or timeout."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check()
            self.cancelled.wait(min(left, self.deadline - time.monotonic(), 0.05))
        self.check()


@dataclass(frozen=True)
class Field:
    """A payload field: its JSON type, whether it is required, and its bounds."""

    kind: type  # int, float (any number), str, bool
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def problem(self, value: object) -> str | None:
        kinds: tuple[type, ...] = (int, float) if self.kind is float else (self.kind,)
        # JSON numbers arrive as float through protobuf's Struct; 3.0 is a fine integer.
        if self.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if (isinstance(value, bool) and self.kind is not bool) or not isinstance(value, kinds):
            return f"expected {_KIND_NAMES[self.kind]}, got {type(value).__name__}"
        if self.minimum is not None and value < self.minimum:  # type: ignore[operator]
            return f"must be >= {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:  # type: ignore[operator]
            return f"must be <= {self.maximum:g}"
        return None


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}

JobFunction = Callable[[JobContext, Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class JobType:
    name: str
    run: JobFunction
    payload: Mapping[str, Field]
    description: str


_REGISTRY: dict[str, JobType] = {}


def job_type(
    name: str, *, payload: Mapping[str, Field] | None = None
) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        if name in _REGISTRY:
            raise ValueError(f"job type {name!r} registered twice")
        _REGISTRY[name] = JobType(name, function, payload or {}, (function.__doc__ or "").strip())
        return function

    return register


def get(name: str) -> JobType | None:
    return _REGISTRY.get(name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def validate(name: str, payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with a submission as (field path, problem); empty when it is acceptable."""
    job = _REGISTRY.get(name)
    if job is None:
        return [("type", f"unknown job type {name!r}; known: {', '.join(names())}")]
    problems = []
    for key, spec in job.payload.items():
        if key not in payload:
            if spec.required:
                problems.append((f"payload.{key}", "required"))
        elif (problem := spec.problem(payload[key])) is not None:
            problems.append((f"payload.{key}", problem))
    problems += [(f"payload.{key}", "unknown field") for key in payload if key not in job.payload]
    return problems
