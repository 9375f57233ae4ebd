"""The gateway's HTTP API fuzzed from its own OpenAPI document (schemathesis): no 5xx (collected
across operations, each with a curl command to repeat it), no hang (each call is bounded),
answers that match the document (status code, content type, schema), and every job it accepts
ends once, consistently everywhere."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.faults.consistency import check_consistency
from tests.faults.fuzz_support import cancel_unfinished
from tests.faults.stack import Stack

pytestmark = [pytest.mark.integration]

EXAMPLES_PER_OPERATION = 40
CALL_TIMEOUT_S = 15.0
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def accepted_ids(path: str, status: int, body: bytes) -> list[str]:
    """The job ids a 202 from POST /jobs or /jobs:batch hands out."""
    if status != 202:
        return []
    reply: Any = json.loads(body)
    if path == "/jobs":
        return [reply["job_id"]]
    if path == "/jobs:batch":
        return [result["job_id"] for result in reply["results"]]
    return []


def make_runnable(body: object) -> None:
    """Turns a generated spec (or batch) into a `noop` job: the document allows any string as a
    type, and random ones are all unknown, so without this nothing would ever be accepted."""
    specs = body.get("specs") if isinstance(body, dict) and "specs" in body else [body]
    for spec in specs if isinstance(specs, list) else []:
        if isinstance(spec, dict) and "type" in spec:
            spec["type"] = "noop"
            spec["payload"] = {}


@dataclass
class Findings:
    accepted: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # answers that contradict the document
    server_errors: dict[str, str] = field(default_factory=dict)  # 5xx kind -> a curl to repeat it


def fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any], base_url: str, findings: Findings
) -> None:
    """EXAMPLES_PER_OPERATION generated requests to one operation, findings recorded."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,  # no example database written into the tree
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), runnable=st.booleans())
    def exercise(case: schemathesis.Case[Any], runnable: bool) -> None:
        if runnable:
            make_runnable(case.body)
        response = case.call(base_url=base_url, timeout=CALL_TIMEOUT_S)
        findings.statuses[f"{label} {response.status_code}"] += 1
        findings.accepted.update(accepted_ids(case.path, response.status_code, response.content))
        if response.status_code >= 500:  # collected too: one run shows every kind of 5xx
            kind = f"{label} -> {response.status_code}: {response.text[:200]}"
            findings.server_errors.setdefault(kind, case.as_curl_command())
            return
        try:
            case.validate_response(response, checks=CONFORMANCE)
        except FailureGroup as group:  # collected: a wrong document is reported whole
            for failure in group.exceptions:
                first_line = str(failure).strip().splitlines()[0] if str(failure) else ""
                findings.failures.append(f"{label}: {type(failure).__name__}: {first_line[:300]}")

    exercise()


def test_http_api_against_its_openapi_document(stack: Stack) -> None:
    base_url = stack.gateway.info.url
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, "the OpenAPI document lists no operation"
    findings = Findings()
    for operation in operations:
        fuzz(operation, base_url, findings)

    print(f"answers: {dict(sorted(findings.statuses.items()))}")
    assert not findings.server_errors, "server errors:\n" + "\n".join(
        f"  {kind}\n    {curl}" for kind, curl in sorted(findings.server_errors.items())
    )
    assert findings.accepted, "the fuzzer never got a job accepted"
    cancelled = cancel_unfinished(stack, findings.accepted)
    print(
        f"{len(findings.accepted)} jobs accepted while fuzzing; {cancelled} cancelled to end them"
    )
    check_consistency(stack, findings.accepted, timeout=180)
    # Last, so that a wrong document does not hide the checks above.
    assert not findings.failures, "answers that do not match the OpenAPI document:\n" + "\n".join(
        sorted(set(findings.failures))
    )
