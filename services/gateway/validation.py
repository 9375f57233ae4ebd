"""Checking submissions and job ids: pure functions, shared by the HTTP and gRPC front ends.

Every problem is reported as (field path, what is wrong), e.g. ("specs[3].priority",
"must be 0..9"), so a client can fix its request without guessing.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format
from observatory.jobs.v1 import job_pb2

import services.jobtypes.builtin  # noqa: F401  (registers the built-in job types)
from services.gateway.config import Limits
from services.jobtypes import registry

Problem = tuple[str, str]

MAX_PRIORITY = 9
MAX_ATTEMPTS = 100
MAX_TIMEOUT_SECONDS = 24 * 3600
MIN_TIMEOUT_SECONDS = 0.001  # stored in milliseconds
MAX_IDEMPOTENCY_KEY_CHARS = 256
MAX_CORRELATION_ID_CHARS = 128
_SPEC_FIELDS = frozenset(
    {"type", "payload", "priority", "idempotency_key", "max_attempts", "timeout_seconds"}
)


class InvalidRequestError(ValueError):
    """The request is malformed; `problems` name each bad field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Resolved:
    """A spec's server-side settings after defaults."""

    max_attempts: int
    timeout: duration_pb2.Duration


def parse_json(body: bytes) -> object:
    """The decoded body; NaN/Infinity are refused (JSON has no such numbers)."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text} is out of range")
        return value

    try:
        return json.loads(body, parse_constant=refuse, parse_float=finite)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestError([("body", f"malformed JSON: {error}")]) from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# HTTP body field -> (accepts the JSON value?, problem otherwise).
_JSON_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "type": (lambda v: isinstance(v, str), "must be a string"),
    "payload": (lambda v: isinstance(v, dict), "must be a JSON object"),
    "priority": (
        lambda v: _is_int(v) and 0 <= v <= MAX_PRIORITY,
        f"must be an integer 0..{MAX_PRIORITY}",
    ),
    "idempotency_key": (lambda v: isinstance(v, str), "must be a string"),
    "max_attempts": (
        lambda v: _is_int(v) and 1 <= v <= MAX_ATTEMPTS,
        f"must be an integer 1..{MAX_ATTEMPTS}",
    ),
    "timeout_seconds": (
        lambda v: _is_number(v) and MIN_TIMEOUT_SECONDS <= v <= MAX_TIMEOUT_SECONDS,
        f"must be a number {MIN_TIMEOUT_SECONDS:g}..{MAX_TIMEOUT_SECONDS}",
    ),
}


def spec_from_json(data: object, prefix: str = "") -> tuple[job_pb2.JobSpec, list[Problem]]:
    """A JobSpec from an HTTP body object, and the type and range problems met on the way."""
    spec = job_pb2.JobSpec()
    if not isinstance(data, dict):
        return spec, [(prefix.rstrip(".") or "body", "must be a JSON object")]
    problems = [(f"{prefix}{key}", "unknown field") for key in data if key not in _JSON_FIELDS]
    if "type" not in data:
        problems.append((f"{prefix}type", "required"))
    valid = {}
    for key, (accepts, problem) in _JSON_FIELDS.items():
        if key in data:
            if accepts(data[key]):
                valid[key] = data[key]
            else:
                problems.append((f"{prefix}{key}", problem))
    spec.type = valid.get("type", "")
    spec.payload.update(valid.get("payload", {}))
    spec.priority = valid.get("priority", 0)
    spec.idempotency_key = valid.get("idempotency_key", "")
    spec.max_attempts = valid.get("max_attempts", 0)
    if "timeout_seconds" in valid:
        spec.timeout.FromTimedelta(timedelta(seconds=valid["timeout_seconds"]))
    return spec, problems


def check_spec(spec: job_pb2.JobSpec, limits: Limits, prefix: str = "") -> list[Problem]:
    """What is wrong with a spec whatever the transport (ranges, size, job type and payload)."""
    problems: list[Problem] = []
    if not 0 <= spec.priority <= MAX_PRIORITY:
        problems.append((f"{prefix}priority", f"must be 0..{MAX_PRIORITY}"))
    # 0 is proto3's "unset": the server default applies.
    if not 0 <= spec.max_attempts <= MAX_ATTEMPTS:
        problems.append((f"{prefix}max_attempts", f"must be 1..{MAX_ATTEMPTS} (0 = default)"))
    if spec.HasField("timeout"):
        seconds = spec.timeout.ToTimedelta().total_seconds()
        if not MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS:
            problems.append(
                (f"{prefix}timeout", f"must be {MIN_TIMEOUT_SECONDS:g}s..{MAX_TIMEOUT_SECONDS}s")
            )
    if len(spec.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        problems.append(
            (f"{prefix}idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters")
        )
    if "\x00" in spec.idempotency_key:
        problems.append((f"{prefix}idempotency_key", NUL_PROBLEM))
    # Measured as its protobuf encoding: the same figure for both transports.
    if spec.payload.ByteSize() > limits.max_payload_bytes:
        problems.append((f"{prefix}payload", f"must be at most {limits.max_payload_bytes} bytes"))
        return problems  # no point checking the fields of an oversized payload
    if not spec.type:
        problems.append((f"{prefix}type", "required"))
        return problems
    try:
        payload: dict[str, Any] = json_format.MessageToDict(spec.payload)
    except ValueError:  # NaN or Infinity, which JSON (and the job store) cannot hold
        return [*problems, (f"{prefix}payload", "numbers must be finite")]
    nul_at = _nul_path(payload, f"{prefix}payload")
    if nul_at is not None:
        return [*problems, (nul_at, NUL_PROBLEM)]
    problems += [(prefix + f, p) for f, p in registry.validate(spec.type, payload)]
    return problems


# PostgreSQL text and jsonb cannot hold U+0000: refused here, named, rather than failing the insert.
NUL_PROBLEM = "must not contain the NUL character (\\u0000)"


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string (value or key) in a JSON value that holds a NUL."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path
            found = _nul_path(item, f"{path}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def check_json_spec(data: object, limits: Limits, prefix: str = "") -> job_pb2.JobSpec:
    """The spec of an HTTP body object, or InvalidRequestError naming every bad field."""
    spec, problems = _json_spec_problems(data, limits, prefix)
    if problems:
        raise InvalidRequestError(problems)
    return spec


def check_json_batch(data: object, limits: Limits) -> list[job_pb2.JobSpec]:
    """The specs of an HTTP batch body `{"specs": [...]}`; one bad spec rejects them all."""
    if not isinstance(data, dict) or set(data) != {"specs"} or not isinstance(data["specs"], list):
        raise InvalidRequestError([("specs", 'body must be {"specs": [job, ...]}')])
    items: list[object] = data["specs"]
    if problems := _batch_size_problems(len(items), limits):
        raise InvalidRequestError(problems)
    specs: list[job_pb2.JobSpec] = []
    problems = []
    for index, item in enumerate(items):
        spec, found = _json_spec_problems(item, limits, f"specs[{index}].")
        specs.append(spec)
        problems += found
    if problems:
        raise InvalidRequestError(problems)
    return specs


def _json_spec_problems(
    data: object, limits: Limits, prefix: str
) -> tuple[job_pb2.JobSpec, list[Problem]]:
    spec, problems = spec_from_json(data, prefix)
    if isinstance(data, dict):
        reported = {field for field, _ in problems}
        problems += [p for p in check_spec(spec, limits, prefix) if p[0] not in reported]
    return spec, problems


def _batch_size_problems(count: int, limits: Limits) -> list[Problem]:
    if count == 0:
        return [("specs", "must not be empty")]
    if count > limits.max_batch:
        return [("specs", f"at most {limits.max_batch} per call, got {count}")]
    return []


def check_batch(specs: Sequence[job_pb2.JobSpec], limits: Limits) -> list[Problem]:
    if problems := _batch_size_problems(len(specs), limits):
        return problems
    for index, spec in enumerate(specs):
        problems += check_spec(spec, limits, f"specs[{index}].")
    return problems


def resolve(spec: job_pb2.JobSpec, limits: Limits) -> Resolved:
    timeout = duration_pb2.Duration()
    if spec.HasField("timeout"):
        timeout.CopyFrom(spec.timeout)
    else:
        timeout.FromTimedelta(timedelta(seconds=limits.default_timeout_seconds))
    return Resolved(spec.max_attempts or limits.default_max_attempts, timeout)


def parse_job_id(job_id: str) -> str:
    """The canonical form of a job id, or InvalidRequestError naming `job_id`."""
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise InvalidRequestError([("job_id", "must be a UUID")]) from None


def correlation_id(value: str | None, field: str = "correlation_id") -> str:
    """The caller's correlation id, or a fresh one when none is given. It is echoed as gRPC
    metadata and an HTTP header, which must be ASCII: anything else is refused up front, before
    anything is stored, rather than failing the answer after the jobs were accepted."""
    if not value:
        return str(uuid.uuid4())
    if len(value) > MAX_CORRELATION_ID_CHARS:
        raise InvalidRequestError(
            [(field, f"must be at most {MAX_CORRELATION_ID_CHARS} characters")]
        )
    if not (value.isascii() and value.isprintable()):
        raise InvalidRequestError([(field, "must be printable ASCII")])
    return value
