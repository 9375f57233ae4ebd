"""The whole alert path on real processes: a job type that fails at 100 % fires
JobFailureRatioHigh in a real Prometheus (the repo's rules), the alert reaches a real
Alertmanager (the repo's routing) and the read model's ListAlerts through its webhook receiver,
and resolves there once the failures stop.

Test configuration: the repo's rule and Alertmanager files with their windows and waits shrunk
(rate windows 20 s, `for` 3 s, group waits 1 s; scrape and evaluation every second) and the
webhook pointed at this test's read model. The expressions and routes are the repo's own.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from observatory.readmodel.v1 import read_model_pb2, read_model_pb2_grpc

from services.common import http_json
from tests.observability import paths
from tests.observability.stack import Stack, running_stack
from tools.testing.servers import AlertmanagerServer, PrometheusServer
from tools.testing.servers.base import ServerInfo
from tools.testing.servers.net import HOST, free_port
from tools.testing.servers.programs import child_env
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]

ALERT = "JobFailureRatioHigh"
WINDOW = "20s"


def shrink_rules(text: str) -> str:
    """The rules with test-sized windows: every range 20 s, every `for` 3 s."""
    text = re.sub(r"\[\d+[smh]\]", f"[{WINDOW}]", text)
    return re.sub(r"(?m)^(\s*)for: \S+$", r"\1for: 3s", text)


def alertmanager_config_for(read_model_url: str) -> str:
    """The repo's Alertmanager config, posting to `read_model_url`, with 1 s group waits."""
    text = paths.ALERTMANAGER_CONFIG.read_text()
    assert "http://127.0.0.1:8081" in text
    text = text.replace("http://127.0.0.1:8081", read_model_url)
    return re.sub(r"(?m)^(\s*)(group_wait|group_interval): \S+$", r"\1\2: 1s", text)


class RepoAlertmanager(AlertmanagerServer):
    """Alertmanager running the repo's configuration text (not a generated mapping)."""

    def __init__(self, state_dir: Path, config_text: str) -> None:
        super().__init__(state_dir)
        self._text = config_text

    def _launch(self) -> ServerInfo:
        port = free_port()
        config = self.state_dir / self.config_file
        config.write_text(self._text)
        self._spawn(self._argv(config, port), env=child_env())
        return ServerInfo(host=HOST, port=port, url=f"http://{HOST}:{port}")


class SteadySubmissions:
    """Submits `batch` copies of `spec` every 300 ms until stopped (a steady rate, so counters
    and queue depths move inside every rate window)."""

    def __init__(self, gateway_url: str, spec: dict[str, Any], batch: int = 1) -> None:
        self._url = gateway_url + "/jobs:batch"
        self._body = {"specs": [spec] * batch}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.submitted = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            http_json.post_json(self._url, self._body)
            self.submitted += len(self._body["specs"])
            self._stop.wait(0.3)

    def __enter__(self) -> SteadySubmissions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture(scope="module")
def observed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """The stack, watched by Prometheus (repo rules) alerting a repo-configured Alertmanager."""
    root = tmp_path_factory.mktemp("alert-flow")
    rules = root / "rules"
    rules.mkdir()
    for source in (paths.RECORDING_RULES, paths.ALERT_RULES):
        (rules / source.name).write_text(shrink_rules(source.read_text()))
    with running_stack(root / "stack") as stack:
        alertmanager = RepoAlertmanager(
            root / "alertmanager", alertmanager_config_for(stack.url("read_model"))
        )
        alertmanager.start()
        try:
            per_object = stack.rabbitmq_per_object_url.removeprefix("http://")
            broker, metrics_path = per_object.split("/", 1)
            scrape = [
                {"job_name": name, "static_configs": [{"targets": [f"{HOST}:{s.info.port}"]}]}
                for name, s in stack.services.items()
            ]
            scrape.append(
                {
                    "job_name": "rabbitmq",
                    "metrics_path": "/" + metrics_path,
                    "static_configs": [{"targets": [broker]}],
                }
            )
            prometheus = PrometheusServer(
                root / "prometheus",
                scrape_configs=scrape,
                rule_files=sorted(rules.glob("*.yml")),
                alertmanagers=[f"{HOST}:{alertmanager.info.port}"],
            )
            prometheus.start()
            try:
                yield stack, alertmanager.info.url
            finally:
                prometheus.stop()
        finally:
            alertmanager.stop()


def _read_model_alerts(stack: Stack) -> list[read_model_pb2.Alert]:
    target = stack.services["read_model"].info.grpc_target
    with grpc.insecure_channel(target) as channel:
        stub = read_model_pb2_grpc.ReadModelServiceStub(channel)
        reply = stub.ListAlerts(read_model_pb2.ListAlertsRequest(), timeout=10)
    return [alert for alert in reply.alerts if alert.name == ALERT]


def _alertmanager_alerts(url: str, name: str = ALERT) -> list[dict[str, Any]]:
    alerts = http_json.get_json(f"{url}/api/v2/alerts?filter=alertname%3D{name}")
    assert isinstance(alerts, list)
    return alerts


def test_failure_ratio_alert_fires_reaches_the_read_model_and_resolves(
    observed_stack: tuple[Stack, str],
) -> None:
    stack, alertmanager_url = observed_stack
    always_fails = {"type": "fail", "payload": {"retryable": False}}
    with SteadySubmissions(stack.url("gateway"), always_fails) as failing:
        in_alertmanager = wait_for(
            lambda: _alertmanager_alerts(alertmanager_url),
            what=f"{ALERT} in Alertmanager",
            timeout=60,
            ignoring=(http_json.HttpError,),
        )
        firing = wait_for(
            lambda: _read_model_alerts(stack),
            until=lambda alerts: any(a.state == read_model_pb2.ALERT_STATE_FIRING for a in alerts),
            what=f"{ALERT} firing in the read model",
            timeout=30,
        )
    assert failing.submitted > 0
    assert {a["labels"]["type"] for a in in_alertmanager} == {"fail"}
    assert in_alertmanager[0]["labels"]["severity"] == "warning"
    alert = firing[0]
    assert alert.labels["type"] == "fail"
    assert alert.severity == read_model_pb2.ALERT_SEVERITY_WARNING
    assert alert.summary == "100% of fail jobs end failed or dead-lettered"
    assert alert.starts_at.seconds > 0 and not alert.HasField("ends_at")

    # Failures stopped: once the window holds none, the ratio has no series and it resolves.
    resolved = wait_for(
        lambda: _read_model_alerts(stack),
        until=lambda alerts: (
            alerts and all(a.state == read_model_pb2.ALERT_STATE_RESOLVED for a in alerts)
        ),
        what=f"{ALERT} resolved in the read model",
        timeout=90,
    )
    assert resolved[0].fingerprint == alert.fingerprint
    assert resolved[0].HasField("ends_at")
    assert resolved[0].ends_at.ToDatetime() > resolved[0].starts_at.ToDatetime()


def test_stopping_the_processor_fires_worker_absent_and_backlog_growing(
    observed_stack: tuple[Stack, str],
) -> None:
    # Last in this module: the stack has no processor afterwards.
    stack, alertmanager_url = observed_stack
    stack.services["processor"].stop()
    echo = {"type": "echo", "payload": {"message": "queued"}}
    with SteadySubmissions(stack.url("gateway"), echo, batch=20):
        for name in ("WorkerAbsent", "QueueBacklogGrowing"):
            alerts = wait_for(
                functools.partial(_alertmanager_alerts, alertmanager_url, name),
                what=f"{name} in Alertmanager",
                timeout=60,
                ignoring=(http_json.HttpError,),
            )
            assert alerts[0]["status"]["state"] == "active", alerts
    backlog = _alertmanager_alerts(alertmanager_url, "QueueBacklogGrowing")
    assert backlog[0]["labels"]["queue"] == "jobs.work"
    assert backlog[0]["labels"]["severity"] == "warning"
    assert _alertmanager_alerts(alertmanager_url, "WorkerAbsent")[0]["labels"]["severity"] == (
        "critical"
    )
