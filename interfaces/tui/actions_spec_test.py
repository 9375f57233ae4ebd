"""The new-job form's checks: every problem names its field, valid input becomes a request."""

from __future__ import annotations

import json

import pytest

from interfaces.tui.actions_spec import (
    JobRequest,
    Problem,
    check_form,
    field_help,
    job_types,
    payload_template,
)


def problems(*args: str) -> list[str]:
    checked = check_form(*args)
    assert isinstance(checked, list), checked
    return [str(p) for p in checked]


def test_valid_form_becomes_the_request_to_send() -> None:
    checked = check_form("sleep", '{"seconds": 1.5}', " 20 ", "3")
    assert checked == JobRequest("sleep", {"seconds": 1.5}, 20, 3)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (("sleep", "{}", "1", "0"), "payload.seconds: required number"),
        (("cpu", "{}", "1", "0"), "payload.rounds: required integer"),
        (("sleep", '{"seconds": "x"}', "1", "0"), "payload.seconds: expected a number, got str"),
        (("sleep", '{"seconds": -1}', "1", "0"), "payload.seconds: must be >= 0"),
        (("sleep", '{"seconds": 1, "x": 2}', "1", "0"), "payload.x: unknown field"),
        (("echo", "[1, 2]", "1", "0"), "payload: must be a JSON object {...}"),
        (("echo", "{nope", "1", "0"), "payload: not valid JSON"),
        (("echo", "{}", "0", "0"), "count: must be 1..10000"),
        (("echo", "{}", "10001", "0"), "count: must be 1..10000"),
        (("echo", "{}", "many", "0"), "count: must be a whole number 1..10000"),
        (("echo", "{}", "1", "10"), "priority: must be 0..9"),
        (("nope", "{}", "1", "0"), "type: choose one of: cpu, echo, fail, noop, sleep"),
    ],
)
def test_each_problem_names_the_field(form: tuple[str, str, str, str], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(*form)), problems(*form)


def test_every_problem_is_reported_at_once_in_form_order() -> None:
    fields = [p.split(":")[0] for p in problems("sleep", "{}", "0", "99")]
    assert fields == ["payload.seconds", "count", "priority"]


def test_templates_are_valid_payloads_of_their_type() -> None:
    for job_type in job_types():
        checked = check_form(job_type, payload_template(job_type), "1", "0")
        assert isinstance(checked, JobRequest), (job_type, checked)
        assert checked.payload == json.loads(payload_template(job_type))


def test_field_help_lists_kind_bounds_and_requiredness() -> None:
    assert field_help("sleep") == "seconds (number 0..3600, required)"
    assert field_help("noop") == "no payload fields"


def test_problem_reads_as_field_colon_message() -> None:
    assert str(Problem("count", "must be 1..10000")) == "count: must be 1..10000"
