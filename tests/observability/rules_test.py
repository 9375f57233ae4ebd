"""Every alert is documented (severity, summary, description, a runbook that exists) and has a
firing and a not-firing unit test in infra/prometheus/rules_test/alerts_test.yml."""

from __future__ import annotations

import re

import pytest

from tests.observability import paths
from tests.observability.promql import alert_names, metric_names, recorded_names, rule_expressions

ALERTS = alert_names(paths.ALERT_RULES)
REQUIRED = {
    "ServiceDown",
    "WorkerAbsent",
    "JobFailureRatioHigh",
    "DeadLetterQueueGrowing",
    "QueueBacklogGrowing",
    "EndToEndLatencyP95High",
}


def _alert_block(name: str) -> str:
    text = paths.ALERT_RULES.read_text()
    found = re.search(rf"- alert: {name}\n(.*?)(?=\n\s*- alert: |\Z)", text, re.DOTALL)
    assert found, name
    return found.group(1)


def test_every_required_alert_exists() -> None:
    assert set(ALERTS) >= REQUIRED, REQUIRED - set(ALERTS)


@pytest.mark.parametrize("name", ALERTS)
def test_alert_has_severity_summary_description_and_runbook(name: str) -> None:
    block = _alert_block(name)
    assert re.search(r"^\s+severity: (critical|warning|info)$", block, re.MULTILINE), block
    assert re.search(r"^\s+summary: \S", block, re.MULTILINE), block
    assert re.search(r"^\s+description: \S", block, re.MULTILINE), block
    assert f"runbook_url: docs/runbooks/{name}.md" in block
    runbook = paths.RUNBOOKS_DIR / f"{name}.md"
    assert runbook.is_file(), runbook
    text = runbook.read_text()
    for section in ("What it means", "How to confirm", "What to do"):
        assert section in text, f"{runbook}: no '{section}' section"


def _rule_test_cases() -> list[tuple[str, bool]]:
    """(alertname, expects it firing) for every alert_rule_test case."""
    cases = []
    lines = paths.RULE_TESTS.read_text().splitlines()
    for index, line in enumerate(lines):
        found = re.match(r"^\s+alertname: (\w+)$", line)
        if found:
            expectation = lines[index + 1].strip()
            assert expectation.startswith("exp_alerts:"), lines[index + 1]
            cases.append((found.group(1), not expectation.startswith("exp_alerts: []")))
    return cases


@pytest.mark.parametrize("name", ALERTS)
def test_alert_has_a_firing_and_a_not_firing_unit_test(name: str) -> None:
    cases = _rule_test_cases()
    assert (name, True) in cases, f"{name}: no firing case in {paths.RULE_TESTS}"
    assert (name, False) in cases, f"{name}: no not-firing case in {paths.RULE_TESTS}"


def test_alerts_use_only_recorded_rule_outputs() -> None:
    recorded = recorded_names(paths.RECORDING_RULES)
    for expression in rule_expressions(paths.ALERT_RULES):
        for name in metric_names(expression):
            if ":" in name:
                assert name in recorded, f"{name} in alerts.yml is not recorded"


@pytest.mark.parametrize("name", ALERTS)
def test_alert_is_listed_in_the_runbook_index(name: str) -> None:
    assert f"[{name}]({name}.md)" in (paths.RUNBOOKS_DIR / "README.md").read_text()
