"""A private tmux server for end-to-end tests of the terminal UI: start a program in a terminal
of a given size, send keys, read the screen, wait for text.

Each instance has its own socket (never the user's tmux) under a short temporary directory
(tmux's socket path must stay under ~100 bytes, which Bazel's TEST_TMPDIR can exceed).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tools.testing.waiting import wait_for

TMUX = shutil.which("tmux")
SESSION = "tui"


def tui_command() -> list[str]:
    """The terminal UI as `bazel run //interfaces:tui` runs it: the binary from the test's
    runfiles under `bazel test` (it must be in the test's data), `python -m interfaces.tui`
    under plain pytest, or whatever `TUI_BIN` names."""
    if explicit := os.environ.get("TUI_BIN"):
        return shlex.split(explicit)
    srcdir, workspace = os.environ.get("TEST_SRCDIR"), os.environ.get("TEST_WORKSPACE")
    if srcdir and workspace:
        binary = Path(srcdir) / workspace / "interfaces" / "tui" / "tui"
        assert binary.exists(), f"{binary} missing: add //interfaces/tui to the test's data"
        return [str(binary)]
    return [sys.executable, "-m", "interfaces.tui"]


def short_tmpdir() -> str:
    for parent in ("/tmp", "/dev/shm", os.environ.get("TEST_TMPDIR"), None):  # noqa: S108
        try:
            return tempfile.mkdtemp(prefix="tui-tmux-", dir=parent)
        except OSError:
            continue
    raise AssertionError("no writable temporary directory")


class Tmux:
    def __init__(self, tmpdir: str | Path) -> None:
        self.tmpdir = Path(tmpdir)
        self.socket = f"tui-test-{uuid.uuid4().hex[:12]}"
        self.env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        self.env["TMUX_TMPDIR"] = str(tmpdir)
        # Our own config instead of ~/.tmux.conf; keep a crashed program's last screen readable.
        self.config = self.tmpdir / "tmux.conf"
        self.config.write_text("set -g remain-on-exit on\n")
        self.exit_file = self.tmpdir / "exit"

    def __call__(self, *args: str) -> str:
        assert TMUX is not None, "tmux is not installed"
        done = subprocess.run(
            [TMUX, "-L", self.socket, "-f", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        size: tuple[int, int] = (80, 24),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Runs `argv` in a `size` terminal; its exit status goes to `exit_file` ("EXIT=n")."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        script = f"{exports}{shlex.join(argv)}; echo EXIT=$? > {shlex.quote(str(self.exit_file))}"
        cols, rows = size
        self(
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            str(cols),
            "-y",
            str(rows),
            "-c",
            str(cwd),
            "sh",
            "-c",
            script,
        )

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", SESSION, *keys)

    def type(self, text: str) -> None:
        self("send-keys", "-t", SESSION, "-l", text)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", SESSION)

    def wait_for_text(self, text: str, timeout: float) -> str:
        """The screen once it shows `text`; on timeout the failure shows the last screen."""
        return wait_for(
            self.screen, what=f"{text!r} on screen", until=lambda s: text in s, timeout=timeout
        )

    def wait_for_exit(self, timeout: float) -> str:
        """The program's "EXIT=n" line once it has exited; on timeout, the last screen."""
        try:
            wait_for(self.exit_file.exists, what="the program to exit", timeout=timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; last screen:\n{self.screen()}") from None
        return self.exit_file.read_text().strip()

    def kill(self) -> None:
        # The server may be gone already: the session ended with the program.
        with contextlib.suppress(subprocess.CalledProcessError):
            self("kill-server")


@contextlib.contextmanager
def tmux_session() -> Iterator[Tmux]:
    tmpdir = short_tmpdir()
    session = Tmux(tmpdir)
    try:
        yield session
    finally:
        session.kill()
        shutil.rmtree(tmpdir, ignore_errors=True)
