"""Prometheus and Alertmanager configuration for the local stack, derived from infra/.

The rule files are infra/prometheus's own, and the job names, metrics paths and labels are
those of infra/prometheus/prometheus.yml, so rules and dashboards work unchanged; only the
targets are the local stack's real ports (one per processor replica). Alertmanager keeps
infra/alertmanager's routing with the webhook pointed at the local read model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tools.launcher.ports import HOST

# The webhook URL in infra/alertmanager/alertmanager.yml (the read model on its default port).
INFRA_WEBHOOK_URL = "http://127.0.0.1:8081/alerts/webhook"
RULE_FILES = ("rules/recording.yml", "rules/alerts.yml")


def infra_dir() -> Path:
    """infra/ of the workspace: in the runfiles under Bazel, else the source tree."""
    # Not resolved: under Bazel this file is a symlink in the runfiles tree, next to infra/.
    return Path(os.path.abspath(__file__)).parents[2] / "infra"


def _job(name: str, targets: list[str], metrics_path: str | None = None) -> dict[str, object]:
    job: dict[str, object] = {"job_name": name, "static_configs": [{"targets": targets}]}
    if metrics_path is not None:
        job["metrics_path"] = metrics_path
    return job


def prometheus_config(
    ports: Mapping[str, int], processors: int, infra: Path | None = None
) -> dict[str, object]:
    """The local Prometheus configuration (as a dict; written as JSON, which is YAML)."""
    rules_root = (infra or infra_dir()) / "prometheus"

    def target(key: str, offset: int = 0) -> str:
        return f"{HOST}:{ports[key] + offset}"

    return {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"stack": "observatory-local"},
        },
        "rule_files": [str(rules_root / rule) for rule in RULE_FILES],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [target("ALERTMANAGER")]}]}]
        },
        "scrape_configs": [
            _job("gateway", [target("GATEWAY_HTTP")]),
            _job("read_model", [target("READ_MODEL_HTTP")]),
            _job("processor", [target("PROCESSOR_HTTP", i) for i in range(processors)]),
            _job("metrics_engine", [target("METRICS_ENGINE_HTTP")]),
            _job("rabbitmq", [target("RABBITMQ_PROMETHEUS")], "/metrics/per-object"),
            _job("prometheus", [target("PROMETHEUS")]),
            _job("alertmanager", [target("ALERTMANAGER")]),
        ],
    }


def alertmanager_config(template: str, read_model_http_port: int) -> str:
    """infra/alertmanager/alertmanager.yml with the webhook on the local read model's port.

    Raises ValueError if the template no longer has the expected webhook URL, rather than
    silently sending alerts to whatever listens on the default port.
    """
    if INFRA_WEBHOOK_URL not in template:
        raise ValueError(f"alertmanager.yml: webhook URL {INFRA_WEBHOOK_URL} not found")
    local = f"http://{HOST}:{read_model_http_port}/alerts/webhook"
    return template.replace(INFRA_WEBHOOK_URL, local)


def alertmanager_template(infra: Path | None = None) -> str:
    return ((infra or infra_dir()) / "alertmanager" / "alertmanager.yml").read_text()
