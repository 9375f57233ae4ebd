"""Where the observability configuration is, in the source tree or in Bazel's runfiles."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    if "TEST_SRCDIR" in os.environ:
        return Path(os.environ["TEST_SRCDIR"]) / os.environ["TEST_WORKSPACE"]
    # Not resolved: under Bazel __file__ is a runfiles symlink into the source tree.
    return Path(__file__).absolute().parents[2]


ROOT = repo_root()
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RECORDING_RULES = PROMETHEUS_DIR / "rules" / "recording.yml"
ALERT_RULES = PROMETHEUS_DIR / "rules" / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules_test" / "alerts_test.yml"
ALERTMANAGER_CONFIG = ROOT / "infra" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"
