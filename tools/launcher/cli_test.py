"""The `observatory` CLI over a stopped stack and bad settings (no process is started)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tools.launcher import cli
from tools.launcher.api import ComponentState, Progress


def test_status_of_a_stack_never_started_exits_3_and_lists_every_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OBSERVATORY_GATEWAY", raising=False)
    monkeypatch.delenv("OBSERVATORY_READ_MODEL", raising=False)
    out = io.StringIO()
    code = cli.main(["--state-dir", str(tmp_path), "status"], out)
    assert code == cli.EXIT_NOT_RUNNING
    text = out.getvalue()
    for name in ("rabbitmq", "postgres", "processor-2", "gateway", "prometheus"):
        assert f"\n{name} " in text
    assert "Gateway API docs:" in text


def test_down_of_a_stack_never_started_stops_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    assert cli.main(["--state-dir", str(tmp_path), "down"], out) == cli.EXIT_OK
    assert "stopped: nothing" in out.getvalue()


def test_half_a_remote_configuration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--gateway", "gw:50051", "status"]) == cli.EXIT_USAGE
    assert "OBSERVATORY_READ_MODEL" in capsys.readouterr().err


def test_progress_line_shows_elapsed_component_and_state() -> None:
    line = cli.progress_line(Progress("postgres", ComponentState.RUNNING, 3.25, "healthy"))
    assert line == "[   3.2s] postgres        running"
    failed = cli.progress_line(Progress("redis", ComponentState.FAILED, 1.0, "exited with 1"))
    assert failed.endswith("failed  exited with 1")
