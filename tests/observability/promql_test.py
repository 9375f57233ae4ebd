"""The metric-name extractor: finds selected metrics, ignores functions, keywords, label names,
label values, durations, numbers and Grafana variables."""

from __future__ import annotations

from pathlib import Path

from tests.observability import paths
from tests.observability.promql import (
    exposition_names,
    metric_names,
    recorded_names,
    rule_expressions,
)


def test_plain_selectors_and_label_matchers() -> None:
    assert metric_names('up{job="processor"} == 0') == {"up"}
    assert metric_names('rabbitmq_queue_messages{queue="jobs.dead", vhost=~"a|b"}') == {
        "rabbitmq_queue_messages"
    }


def test_functions_grouping_labels_durations_and_numbers_are_not_metrics() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, type) (rate(x_bucket[5m] offset 1h)))"
        " / on (type) group_left (instance) y:rate5m > 1e3 and absent(z_total) or vector(0)"
    )
    assert metric_names(expr) == {"x_bucket", "y:rate5m", "z_total"}


def test_grafana_variables_and_strings_are_ignored() -> None:
    assert metric_names('rate(a_total{type="$type"}[$__rate_interval]) * "or"') == {"a_total"}


def test_rule_files_are_read_with_block_expressions(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n      - record: a:b:rate5m\n"
        "        expr: |\n          sum(rate(one_total[5m]))\n            or two\n"
        "      - alert: A\n        expr: a:b:rate5m > 1\n        for: 1m\n"
    )
    assert rule_expressions(rules) == ["sum(rate(one_total[5m])) or two", "a:b:rate5m > 1"]
    assert recorded_names(rules) == {"a:b:rate5m"}


def test_the_repo_rules_use_metrics_from_every_service() -> None:
    used = set().union(*(metric_names(e) for e in rule_expressions(paths.RECORDING_RULES)))
    assert {"processor_jobs_failed_total", "gateway_request_seconds_bucket"} <= used


def test_exposition_names() -> None:
    text = '# HELP a_total x\n# TYPE a_total counter\na_total{t="1"} 2.0\nb 1\n'
    assert exposition_names(text) == {"a_total", "b"}
