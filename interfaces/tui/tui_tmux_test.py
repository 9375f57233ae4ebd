"""End to end: the real program in a real 80x24 terminal (tmux), driven by keys.

Runs the Bazel-built binary from runfiles under `bazel test`, `python -m interfaces.tui` from the
repo root under plain pytest, or whatever `TUI_BIN` names. This one stops at the prerequisite
screen (a tool it checks for is hidden); tests/e2e drives the whole stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.testing.tmux import TMUX, Tmux, tmux_session, tui_command

REPO_ROOT = Path(__file__).absolute().parents[2]  # not resolve(): stay inside runfiles
TITLE = "Distributed Task Observatory - prerequisites"
# The first check imports every Python dep; a cold Bazel runfiles start adds more.
START_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 15.0

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    with tmux_session() as session:
        yield session


def test_missing_prerequisite_stops_at_the_check_and_q_exits_0(tmux: Tmux) -> None:
    # A PATH with python3 alone hides bazel, tmux, redis-server...: the check screen stays up
    # instead of launching the stack.
    only_python = tmux.tmpdir / "bin"
    only_python.mkdir()
    (only_python / "python3").symlink_to("/usr/bin/python3")
    tmux.start(tui_command(), cwd=REPO_ROOT, env={"PATH": str(only_python)})

    screen = tmux.wait_for_text(TITLE, START_TIMEOUT_S)
    screen = tmux.wait_for_text("[missing]", START_TIMEOUT_S)

    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    assert "Build" in screen and "bazel" in screen, screen
    assert "q quit" in lines[-1], screen

    # Help opens over the table; the first `q` only closes it, the second quits.
    tmux.keys("?")
    tmux.wait_for_text("close this help", EXIT_TIMEOUT_S)
    tmux.keys("q")
    tmux.wait_for_text("[missing]", 5)
    assert "close this help" not in tmux.screen()
    assert not tmux.exit_file.exists()
    tmux.keys("q")
    assert tmux.wait_for_exit(EXIT_TIMEOUT_S) == "EXIT=0"
