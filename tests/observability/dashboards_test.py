"""Grafana provisioning and dashboards: valid JSON with what Grafana needs to load them, unique
uids, and every panel queries the provisioned Prometheus data source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.observability import paths
from tests.observability.promql import dashboard_expressions, load_dashboard

DATASOURCE_UID = "observatory-prometheus"
EXPECTED = {"overview.json", "service-health.json", "queues.json", "job-latency-slos.json"}


def test_the_four_dashboards_exist() -> None:
    assert {path.name for path in paths.DASHBOARDS} >= EXPECTED


@pytest.mark.parametrize("path", paths.DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_loadable_grafana_json(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert isinstance(dashboard.get("title"), str) and dashboard["title"]
    assert isinstance(dashboard.get("uid"), str) and 0 < len(dashboard["uid"]) <= 40
    assert isinstance(dashboard.get("schemaVersion"), int)
    panels = dashboard.get("panels")
    assert isinstance(panels, list) and panels, "no panels"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids {ids}"
    for panel in panels:
        where = f"{path.name} panel {panel.get('title')!r}"
        assert panel.get("type") and panel.get("title"), where
        assert {"x", "y", "w", "h"} <= set(panel.get("gridPos", {})), where
        assert panel.get("datasource", {}).get("uid") == DATASOURCE_UID, where
        targets = panel.get("targets")
        assert isinstance(targets, list) and targets, f"{where}: no targets"
        for target in targets:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), where
            assert target.get("refId"), where
    assert len(dashboard_expressions(dashboard)) == sum(len(p["targets"]) for p in panels)


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in paths.DASHBOARDS]
    assert len(uids) == len(set(uids)), uids


def test_provisioned_datasource_has_the_uid_the_dashboards_use() -> None:
    text = (paths.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert f"uid: {DATASOURCE_UID}" in text
    assert "url: http://127.0.0.1:9090" in text
    provider = (paths.GRAFANA_DIR / "provisioning" / "dashboards" / "observatory.yml").read_text()
    assert "type: file" in provider and "path:" in provider
