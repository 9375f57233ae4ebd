"""The configuration passes the tools' own checks, offline: promtool check config / check rules,
amtool check-config, and the rule unit tests (promtool test rules)."""

from __future__ import annotations

from pathlib import Path

from tests.observability import paths
from tests.observability.promtool import amtool, copy_tree, explain, promtool


def test_prometheus_config_is_valid_and_finds_both_rule_files(tmp_path: Path) -> None:
    config = copy_tree(paths.PROMETHEUS_DIR, tmp_path) / "prometheus.yml"
    result = promtool("check", "config", config)
    assert result.returncode == 0, explain(result)
    assert "2 rule files found" in result.stdout, explain(result)


def test_rule_files_are_valid(tmp_path: Path) -> None:
    rules = copy_tree(paths.PROMETHEUS_DIR, tmp_path) / "rules"
    result = promtool("check", "rules", rules / "recording.yml", rules / "alerts.yml")
    assert result.returncode == 0, explain(result)


def test_alert_rule_unit_tests_pass(tmp_path: Path) -> None:
    tests = copy_tree(paths.PROMETHEUS_DIR, tmp_path) / "rules_test" / "alerts_test.yml"
    result = promtool("test", "rules", tests)
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout, explain(result)


def test_promtool_rule_tests_catch_a_broken_alert(tmp_path: Path) -> None:
    # Guards against a rule test file that passes whatever the rules say.
    prometheus = copy_tree(paths.PROMETHEUS_DIR, tmp_path)
    alerts = prometheus / "rules" / "alerts.yml"
    alerts.write_text(alerts.read_text().replace("> 0.25", "> 2"))
    result = promtool("test", "rules", prometheus / "rules_test" / "alerts_test.yml")
    assert result.returncode != 0, explain(result)
    assert "JobFailureRatioHigh" in result.stdout + result.stderr


def test_alertmanager_config_is_valid(tmp_path: Path) -> None:
    config = copy_tree(paths.ALERTMANAGER_CONFIG.parent, tmp_path) / "alertmanager.yml"
    result = amtool("check-config", config)
    assert result.returncode == 0, explain(result)


def test_alertmanager_routes_alerts_of_both_severities_to_the_read_model(tmp_path: Path) -> None:
    config = copy_tree(paths.ALERTMANAGER_CONFIG.parent, tmp_path) / "alertmanager.yml"
    for severity in ("critical", "warning", "info"):
        result = amtool(
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            "alertname=JobFailureRatioHigh",
            f"severity={severity}",
        )
        assert result.returncode == 0, explain(result)
        assert result.stdout.strip() == "read-model", explain(result)
    text = config.read_text()
    assert "url: http://127.0.0.1:8081/alerts/webhook" in text
    assert "send_resolved: true" in text
