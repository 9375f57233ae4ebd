"""Submission checks: every bad input is refused with a problem naming its field."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from observatory.jobs.v1 import job_pb2

from services.gateway import validation
from services.gateway.config import Limits
from services.gateway.validation import InvalidRequestError

LIMITS = Limits(max_payload_bytes=1024)


def fields_of(error: pytest.ExceptionInfo[InvalidRequestError]) -> set[str]:
    return {field for field, _ in error.value.problems}


def test_a_minimal_json_spec_gets_the_server_defaults() -> None:
    spec = validation.check_json_spec({"type": "noop"}, LIMITS)
    resolved = validation.resolve(spec, LIMITS)
    assert (spec.type, spec.priority, spec.idempotency_key) == ("noop", 0, "")
    assert resolved.max_attempts == LIMITS.default_max_attempts
    assert resolved.timeout.ToTimedelta() == timedelta(seconds=LIMITS.default_timeout_seconds)


def test_a_full_json_spec_keeps_every_field() -> None:
    spec = validation.check_json_spec(
        {
            "type": "echo",
            "payload": {"message": "hi"},
            "priority": 9,
            "idempotency_key": "k-1",
            "max_attempts": 5,
            "timeout_seconds": 1.5,
        },
        LIMITS,
    )
    resolved = validation.resolve(spec, LIMITS)
    assert dict(spec.payload) == {"message": "hi"}
    assert (spec.priority, spec.idempotency_key, resolved.max_attempts) == (9, "k-1", 5)
    assert resolved.timeout.ToTimedelta() == timedelta(seconds=1.5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": 3}, "type"),
        ({"type": "no.such.type"}, "type"),
        ({"type": "echo", "payload": [1]}, "payload"),
        ({"type": "echo", "payload": {"message": 5}}, "payload.message"),
        ({"type": "echo", "payload": {"extra": 1}}, "payload.extra"),
        ({"type": "sleep", "payload": {}}, "payload.seconds"),
        ({"type": "noop", "priority": 10}, "priority"),
        ({"type": "noop", "priority": -1}, "priority"),
        ({"type": "noop", "priority": "high"}, "priority"),
        ({"type": "noop", "priority": True}, "priority"),
        ({"type": "noop", "priority": 1.5}, "priority"),
        ({"type": "noop", "max_attempts": 0}, "max_attempts"),
        ({"type": "noop", "max_attempts": 101}, "max_attempts"),
        ({"type": "noop", "timeout_seconds": 0}, "timeout_seconds"),
        ({"type": "noop", "timeout_seconds": 1e-9}, "timeout_seconds"),
        ({"type": "noop", "timeout_seconds": "30"}, "timeout_seconds"),
        ({"type": "noop", "idempotency_key": 7}, "idempotency_key"),
        ({"type": "noop", "idempotency_key": "k" * 257}, "idempotency_key"),
        ({"type": "noop", "colour": "red"}, "colour"),
        ({"type": "echo", "payload": {"message": "x" * 2000}}, "payload"),
        ([1, 2], "body"),
    ],
)
def test_each_bad_json_field_is_named(body: object, field: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        validation.check_json_spec(body, LIMITS)
    assert field in fields_of(error)
    assert field in str(error.value)


def test_several_bad_fields_are_all_reported_once() -> None:
    with pytest.raises(InvalidRequestError) as error:
        validation.check_json_spec({"priority": 99, "max_attempts": -1}, LIMITS)
    fields = [field for field, _ in error.value.problems]
    assert sorted(fields) == ["max_attempts", "priority", "type"]


def test_malformed_json_is_refused() -> None:
    for body in (b"{", b"\xff", b'{"type": NaN}', b'{"payload": {"x": 1e400}}'):
        with pytest.raises(InvalidRequestError) as error:
            validation.parse_json(body)
        assert fields_of(error) == {"body"}


def test_one_bad_spec_rejects_the_batch_naming_its_index() -> None:
    items: list[object] = [{"type": "noop"}] * 5
    items[3] = {"type": "noop", "priority": 12}
    with pytest.raises(InvalidRequestError) as error:
        validation.check_json_batch({"specs": items}, LIMITS)
    assert fields_of(error) == {"specs[3].priority"}
    protos = [job_pb2.JobSpec(type="noop") for _ in range(5)]
    protos[3].priority = 12
    assert [f for f, _ in validation.check_batch(protos, LIMITS)] == ["specs[3].priority"]


def test_batch_size_is_bounded() -> None:
    assert validation.check_batch([], LIMITS)[0][0] == "specs"
    too_many = [job_pb2.JobSpec(type="noop")] * (LIMITS.max_batch + 1)
    assert "at most" in validation.check_batch(too_many, LIMITS)[0][1]
    bodies: list[object] = [{"specs": []}, {"specs": "x"}, {"jobs": []}]
    for body in bodies:
        with pytest.raises(InvalidRequestError) as error:
            validation.check_json_batch(body, LIMITS)
        assert fields_of(error) == {"specs"}


def test_proto_spec_checks_name_the_fields() -> None:
    spec = job_pb2.JobSpec(type="sleep", priority=11, max_attempts=-2)
    spec.timeout.FromTimedelta(timedelta(seconds=-1))
    problems = dict(validation.check_spec(spec, LIMITS, "spec."))
    assert set(problems) == {
        "spec.priority",
        "spec.max_attempts",
        "spec.timeout",
        "spec.payload.seconds",
    }


def test_proto_payload_numbers_must_be_finite() -> None:
    spec = job_pb2.JobSpec(type="fail")
    spec.payload.update({"probability": float("nan")})
    assert validation.check_spec(spec, LIMITS) == [("payload", "numbers must be finite")]


@pytest.mark.parametrize(
    ("payload", "key", "field"),
    [
        ({"note": "a\x00b"}, "", "payload.note"),
        ({"a": {"b\x00": 1}}, "", "payload.a"),
        ({"items": ["ok", "x\x00"]}, "", "payload.items[1]"),
        ({}, "key\x00", "idempotency_key"),
    ],
)
def test_nul_characters_are_refused_naming_where(
    payload: dict[str, Any], key: str, field: str
) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb: refused up front, not a failed insert.
    spec = job_pb2.JobSpec(type="noop", idempotency_key=key)
    spec.payload.update(payload)
    assert validation.check_spec(spec, LIMITS) == [(field, validation.NUL_PROBLEM)]


def test_proto_zero_values_mean_the_defaults() -> None:
    spec = job_pb2.JobSpec(type="noop")
    assert validation.check_spec(spec, LIMITS) == []
    assert validation.resolve(spec, LIMITS).max_attempts == LIMITS.default_max_attempts


@given(st.text(max_size=40))
def test_job_ids_are_uuids_or_refused(text: str) -> None:
    try:
        canonical = validation.parse_job_id(text)
    except InvalidRequestError as error:
        assert error.problems == [("job_id", "must be a UUID")]
    else:
        assert validation.parse_job_id(canonical) == canonical


def test_correlation_ids_are_kept_when_sane_generated_when_absent_else_refused() -> None:
    assert validation.correlation_id("trace-1") == "trace-1"
    for absent in (None, ""):
        assert uuid.UUID(validation.correlation_id(absent))
    for bad in ("x" * 129, "line\nbreak", "á", "trace\x00"):
        with pytest.raises(InvalidRequestError) as refused:
            validation.correlation_id(bad)
        assert refused.value.problems[0][0] == "correlation_id"
