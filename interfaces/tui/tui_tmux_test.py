"""End to end: the real program in a real 80x24 terminal (tmux), driven by keys.

Runs the Bazel-built binary from runfiles under `bazel test`, `python -m interfaces.tui` from the
repo root under plain pytest, or whatever `TUI_BIN` names.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
REPO_ROOT = Path(__file__).absolute().parents[2]  # not resolve(): stay inside runfiles
TITLE = "Distributed Task Observatory - prerequisites"
# The first check imports every Python dep; a cold Bazel runfiles start adds more.
START_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 15.0

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


def tui_command() -> list[str]:
    if explicit := os.environ.get("TUI_BIN"):
        return shlex.split(explicit)
    srcdir, workspace = os.environ.get("TEST_SRCDIR"), os.environ.get("TEST_WORKSPACE")
    if srcdir and workspace:
        binary = Path(srcdir) / workspace / "interfaces" / "tui" / "tui"
        assert binary.exists(), f"{binary} missing: add //interfaces/tui to the test's data"
        return [str(binary)]
    return [sys.executable, "-m", "interfaces.tui"]


def short_tmpdir() -> str:
    # tmux's socket path must stay under ~100 bytes, which Bazel's TEST_TMPDIR can exceed.
    for parent in ("/tmp", "/dev/shm", os.environ.get("TEST_TMPDIR"), None):  # noqa: S108
        try:
            return tempfile.mkdtemp(prefix="tui-tmux-", dir=parent)
        except OSError:
            continue
    raise AssertionError("no writable temporary directory")


class Tmux:
    def __init__(self, tmpdir: str) -> None:
        self.socket = f"tui-test-{uuid.uuid4().hex[:12]}"  # private server, never the user's
        self.env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        self.env["TMUX_TMPDIR"] = tmpdir
        # Our own config instead of ~/.tmux.conf; keep a crashed program's last screen readable.
        self.config = Path(tmpdir) / "tmux.conf"
        self.config.write_text("set -g remain-on-exit on\n")

    def __call__(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, "-f", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def kill(self) -> None:
        # The server may be gone already: the session ended with the program.
        with contextlib.suppress(subprocess.CalledProcessError):
            self("kill-server")


@pytest.fixture
def tmux() -> Iterator[tuple[Tmux, Path]]:
    tmpdir = short_tmpdir()
    session = Tmux(tmpdir)
    try:
        yield session, Path(tmpdir)
    finally:
        session.kill()
        shutil.rmtree(tmpdir, ignore_errors=True)


def wait_for(what: str, ready: Callable[[], bool], timeout: float, last: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen:\n{last()}")


def test_screen_shows_checks_and_q_exits_0(tmux: tuple[Tmux, Path]) -> None:
    session, tmpdir = tmux
    exit_file = tmpdir / "exit"
    program = shlex.join(tui_command())
    script = f"{program}; echo EXIT=$? > {shlex.quote(str(exit_file))}"
    new_session = ["new-session", "-d", "-s", "tui", "-x", "80", "-y", "24"]
    session(*new_session, "-c", str(REPO_ROOT), "sh", "-c", script)

    screen = ""

    def shows(text: str) -> Callable[[], bool]:
        def check() -> bool:
            nonlocal screen
            screen = session.screen()
            return text in screen

        return check

    wait_for("the title", shows(TITLE), START_TIMEOUT_S, lambda: screen)
    wait_for("the table", shows("[ok]"), START_TIMEOUT_S, lambda: screen)

    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    assert "Build" in screen and "bazel" in screen, screen
    assert "q quit" in lines[-1], screen

    # Help opens over the table; the first `q` only closes it, the second quits.
    session("send-keys", "-t", "tui", "?")
    wait_for("the help", shows("close this help"), EXIT_TIMEOUT_S, lambda: screen)
    session("send-keys", "-t", "tui", "q")
    wait_for("the help to close", lambda: not shows("close this help")(), 5, lambda: screen)
    assert not exit_file.exists(), screen
    session("send-keys", "-t", "tui", "q")
    wait_for("the program to exit", exit_file.exists, EXIT_TIMEOUT_S, lambda: screen)
    assert exit_file.read_text().strip() == "EXIT=0"
