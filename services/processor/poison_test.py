"""Poison detection: every kind of unusable work message is named, good ones pass."""

from __future__ import annotations

import pytest

import services.jobtypes.builtin  # noqa: F401 (registers the built-in job types)
from services.processor.poison import PoisonMessageError, parse_work_message
from services.processor.testing import make_job

GOOD_HEADERS = {"x-attempt": 2, "x-contract-version": "1"}


def test_a_gateway_message_parses() -> None:
    job = make_job("noop")
    message = parse_work_message(job.SerializeToString(), GOOD_HEADERS)
    assert message.job == job
    assert message.attempt == 2


@pytest.mark.parametrize(
    ("body", "headers", "kind", "says"),
    [
        (b"\xff\xfe not protobuf", GOOD_HEADERS, "undecodable", "not an observatory.jobs.v1.Job"),
        (b"", GOOD_HEADERS, "undecodable", "id is not a UUID"),
        (
            None,
            {"x-attempt": 1, "x-contract-version": "2"},
            "contract_version",
            "x-contract-version",
        ),
        (None, {"x-contract-version": "1"}, "missing_header", "x-attempt"),
        (None, {"x-attempt": 1}, "missing_header", "x-contract-version"),
        (None, None, "missing_header", "x-contract-version"),
        (None, {"x-attempt": "one", "x-contract-version": "1"}, "bad_header", "x-attempt"),
        (None, {"x-attempt": 0, "x-contract-version": "1"}, "bad_header", "x-attempt"),
    ],
)
def test_poison_is_named(
    body: bytes | None, headers: dict[str, object] | None, kind: str, says: str
) -> None:
    body = make_job("noop").SerializeToString() if body is None else body
    with pytest.raises(PoisonMessageError) as caught:
        parse_work_message(body, headers)
    assert caught.value.kind == kind
    assert says in caught.value.reason


def test_an_unknown_type_is_poison_that_still_names_its_job() -> None:
    job = make_job("no.such.type")
    with pytest.raises(PoisonMessageError) as caught:
        parse_work_message(job.SerializeToString(), GOOD_HEADERS)
    assert caught.value.kind == "unknown_type"
    assert caught.value.job is not None
    assert caught.value.job.id == job.id
