"""Every metric name used by an alert rule, a recording rule or a Grafana dashboard is exported:
the real services and RabbitMQ (with its prometheus plugin, per-object endpoint as scraped by
infra/prometheus/prometheus.yml) run, jobs go through (completed, failed, retried and
dead-lettered), each /metrics is scraped and the names are compared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common import http_json
from tests.observability import paths
from tests.observability.exposition import exported_names
from tests.observability.promql import (
    SYNTHETIC,
    dashboard_expressions,
    exposition_names,
    load_dashboard,
    metric_names,
    recorded_names,
    rule_expressions,
)
from tests.observability.stack import Stack, running_stack
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]


def _scrape_all(stack: Stack) -> dict[str, str]:
    pages = {name: http_json.get_text(f"{stack.url(name)}/metrics") for name in stack.services}
    pages["rabbitmq"] = http_json.get_text(stack.rabbitmq_per_object_url)
    return pages


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """/metrics of every service and of RabbitMQ after completed, failed and dead-lettered jobs."""
    with running_stack(tmp_path_factory.mktemp("observability")) as stack:
        jobs = stack.url("gateway") + "/jobs"
        http_json.post_json(jobs, {"type": "echo", "payload": {"message": "ok"}})
        http_json.post_json(jobs, {"type": "fail", "payload": {"retryable": False}})
        http_json.post_json(jobs, {"type": "fail", "payload": {}, "max_attempts": 2})
        wanted = {
            "processor_jobs_completed_total",
            "processor_jobs_failed_total",
            "processor_jobs_retried_total",
            "processor_jobs_dead_lettered_total",
        }
        processor = stack.url("processor") + "/metrics"
        wait_for(
            lambda: exposition_names(http_json.get_text(processor)),
            until=lambda names: wanted <= names,
            what="a completed, a failed, a retried and a dead-lettered job",
            timeout=60,
        )
        yield wait_for(
            lambda: _scrape_all(stack),
            until=lambda pages: (
                "metrics_engine_events_consumed_total" in exposition_names(pages["metrics_engine"])
            ),
            what="the metrics engine to store events",
            timeout=30,
        )


def _used_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (rule file or dashboard)."""
    sources: dict[str, list[str]] = {
        path.name: rule_expressions(path) for path in (paths.RECORDING_RULES, paths.ALERT_RULES)
    }
    for path in paths.DASHBOARDS:
        sources[path.name] = dashboard_expressions(load_dashboard(path))
    used: dict[str, set[str]] = {}
    for source, expressions in sources.items():
        for expression in expressions:
            for name in metric_names(expression):
                used.setdefault(name, set()).add(source)
    return used


def test_every_metric_used_by_rules_and_dashboards_is_exported(scraped: dict[str, str]) -> None:
    exported = set().union(*(exported_names(page) for page in scraped.values()))
    recorded = recorded_names(paths.RECORDING_RULES)
    used = _used_names()
    missing = {
        name: sorted(where)
        for name, where in used.items()
        if name not in exported | recorded | SYNTHETIC
    }
    assert not missing, f"used but exported by no service: {missing}"
    # The check has teeth: it saw the services' own metrics and the broker's per-queue ones.
    assert {"processor_jobs_failed_total", "rabbitmq_queue_messages_ready"} <= set(used)


def test_failure_ratio_and_queue_alert_inputs_have_live_samples(scraped: dict[str, str]) -> None:
    # Declared-but-unused families would satisfy the name check; these must carry samples.
    sampled = set().union(*(exposition_names(page) for page in scraped.values()))
    for name in (
        "processor_jobs_completed_total",
        "processor_jobs_failed_total",
        "processor_jobs_dead_lettered_total",
        "processor_job_duration_seconds_bucket",
        "processor_job_end_to_end_seconds_bucket",
        "processor_queue_wait_seconds_bucket",
        "observatory_queue_messages_ready",
        "observatory_queue_consumers",
        "gateway_jobs_accepted_by_type_total",
        "gateway_request_seconds_bucket",
        "metrics_engine_processing_seconds_bucket",
    ):
        assert name in sampled, name
    rabbitmq = scraped["rabbitmq"]
    for queue in ("jobs.work", "jobs.dead"):
        for name in (
            "rabbitmq_queue_messages_ready",
            "rabbitmq_queue_messages",
            "rabbitmq_queue_consumers",
        ):
            assert any(
                line.startswith(name + "{") and f'queue="{queue}"' in line
                for line in rabbitmq.splitlines()
            ), f"{name} for {queue} not on /metrics/per-object"
