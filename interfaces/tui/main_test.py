"""`--check` and the no-TTY fallback: plain-text report and exit status."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from interfaces.tui.fakes import fake_probes
from interfaces.tui.main import EXIT_MISSING, EXIT_OK, EXIT_USAGE, main
from interfaces.tui.prereqs import Probes
from interfaces.tui.report import TITLE

REPO_ROOT = Path(__file__).absolute().parents[2]  # not resolve(): stay inside runfiles


def run_main(argv: list[str], probes: Probes) -> tuple[int, str]:
    # StringIO is not a TTY, as in CI or a pipe.
    out = io.StringIO()
    status = main(argv, probes=probes, stdin=io.StringIO(), stdout=out)
    return status, out.getvalue()


def test_check_passes_on_a_healthy_machine() -> None:
    status, out = run_main(["--check"], fake_probes())

    assert status == EXIT_OK
    assert out.startswith(TITLE)
    assert "all 34 checks passed" in out


def test_check_fails_and_prints_the_fix_when_something_is_missing() -> None:
    status, out = run_main(["--check"], fake_probes(missing_binaries={"tmux", "initdb", "pg_ctl"}))

    assert status == EXIT_MISSING
    assert "[missing] tmux" in out
    assert out.rstrip().endswith("install all: sudo apt-get install -y postgresql tmux")


def test_check_passes_with_only_warnings() -> None:
    status, out = run_main(["--check"], fake_probes(busy_ports={5432}))

    assert status == EXIT_OK
    assert "[warn]    port 5432" in out


def test_no_tty_falls_back_to_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_main([], fake_probes(missing_modules={"pika"}))

    assert status == EXIT_MISSING
    assert "[missing] pika" in out
    assert "not a terminal" in capsys.readouterr().err


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_screen_that_cannot_start_falls_back_to_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if urwid were not installed (plain python3 outside Bazel).
    monkeypatch.setitem(sys.modules, "interfaces.tui.app", None)
    out = FakeTty()

    status = main([], probes=fake_probes(missing_modules={"urwid"}), stdin=FakeTty(), stdout=out)

    assert status == EXIT_MISSING
    assert "[missing] urwid" in out.getvalue()
    assert "cannot start the screen" in capsys.readouterr().err


def test_real_program_without_tty_prints_report_instead_of_crashing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "interfaces.tui"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode in (EXIT_OK, EXIT_MISSING), done.stderr
    assert done.stdout.startswith(TITLE)
    assert "not a terminal" in done.stderr


def test_a_malformed_remote_address_is_a_usage_error_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(
        ["--gateway", "nohostport", "--read-model", "rm:50052"],
        probes=fake_probes(),
        stdin=FakeTty(),
        stdout=FakeTty(),
    )

    assert status == EXIT_USAGE
    assert "OBSERVATORY_GATEWAY: expected host:port, got 'nohostport'" in capsys.readouterr().err
