"""The new-job form's rules, without any widget: parse and check what the user typed.

Uses the same job type registry as the gateway, so the form refuses what the gateway would
(unknown field, missing required field, wrong type, out of range), naming the field, before
anything is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import services.jobtypes.builtin  # noqa: F401  (registers the built-in job types)
from interfaces.tui.gateway_client import MAX_SUBMIT_COUNT
from services.jobtypes import registry

KIND_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}
MAX_PRIORITY = 9


@dataclass(frozen=True)
class JobRequest:
    """A checked form: what GatewayClient.submit sends."""

    job_type: str
    payload: dict[str, Any]
    count: int
    priority: int


@dataclass(frozen=True)
class Problem:
    field: str  # "payload.seconds", "count", ...
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def job_types() -> list[str]:
    return registry.names()


def payload_template(job_type: str) -> str:
    """A starting payload: each declared field with a placeholder of its kind, required first."""
    declared = registry.get(job_type)
    if declared is None:
        return "{}"
    samples: dict[type, object] = {int: 1, float: 1, str: "text", bool: False}
    fields = sorted(declared.payload.items(), key=lambda item: not item[1].required)
    required = {key: samples[field.kind] for key, field in fields if field.required}
    return json.dumps(required or {key: samples[field.kind] for key, field in fields[:1]})


def field_help(job_type: str) -> str:
    """One line describing the type's payload fields: "seconds (number, required)"."""
    declared = registry.get(job_type)
    if declared is None:
        return ""
    parts = []
    for key, field in declared.payload.items():
        bounds = ""
        if field.minimum is not None or field.maximum is not None:
            low = "" if field.minimum is None else f"{field.minimum:g}"
            high = "" if field.maximum is None else f"{field.maximum:g}"
            bounds = f" {low}..{high}"
        required = ", required" if field.required else ""
        parts.append(f"{key} ({KIND_NAMES[field.kind]}{bounds}{required})")
    return ", ".join(parts) or "no payload fields"


def _integer(text: str, name: str, low: int, high: int) -> tuple[int | None, Problem | None]:
    try:
        value = int(text.strip())
    except ValueError:
        return None, Problem(name, f"must be a whole number {low}..{high}")
    if not low <= value <= high:
        return None, Problem(name, f"must be {low}..{high}")
    return value, None


def payload_problems(job_type: str, payload: dict[str, Any]) -> list[Problem]:
    declared = registry.get(job_type)
    problems = []
    for field, problem in registry.validate(job_type, payload):
        if problem == "required" and declared is not None:
            kind = declared.payload[field.removeprefix("payload.")].kind
            problem = f"required {KIND_NAMES[kind]}"  # noqa: PLW2901 (the same problem, said fully)
        problems.append(Problem(field, problem))
    return problems


def check_form(
    job_type: str, payload_text: str, count_text: str, priority_text: str
) -> JobRequest | list[Problem]:
    """The request to send, or every problem found (field by field, in form order)."""
    problems: list[Problem] = []
    if registry.get(job_type) is None:
        problems.append(Problem("type", f"choose one of: {', '.join(job_types())}"))
    payload: dict[str, Any] | None = None
    try:
        parsed = json.loads(payload_text or "{}")
    except json.JSONDecodeError as error:
        problems.append(Problem("payload", f"not valid JSON ({error.msg} at column {error.colno})"))
    else:
        if isinstance(parsed, dict):
            payload = parsed
            if registry.get(job_type) is not None:
                problems += payload_problems(job_type, payload)
        else:
            problems.append(Problem("payload", "must be a JSON object {...}"))
    count, count_problem = _integer(count_text, "count", 1, MAX_SUBMIT_COUNT)
    priority, priority_problem = _integer(priority_text, "priority", 0, MAX_PRIORITY)
    problems += [p for p in (count_problem, priority_problem) if p is not None]
    if problems:
        return problems
    assert payload is not None and count is not None and priority is not None
    return JobRequest(job_type, payload, count, priority)
