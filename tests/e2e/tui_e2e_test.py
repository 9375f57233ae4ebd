"""The main job end to end: the TUI in a real 80x24 terminal brings up the whole local stack on a
fresh state dir, reaches the live dashboard, and is driven by keys as a user would.

What `./bazelw run //interfaces:tui` runs is the `//interfaces/tui` binary; under `bazel test` it
comes from the runfiles (Bazel cannot run inside a test), with every port of the stack moved to a
free one so a stack on the default ports (or another test) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tools.launcher.ports import ALL_PORTS
from tools.testing.servers.net import free_ports
from tools.testing.tmux import TMUX, Tmux, tmux_session, tui_command
from tools.testing.waiting import wait_for

REPO_ROOT = Path(__file__).absolute().parents[2]  # not resolve(): stay inside runfiles
SIZE = (80, 24)
LAUNCH_TIMEOUT_S = 240.0  # RabbitMQ alone takes ~7 s idle, much more on a loaded 2-core box
JOBS_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 120.0
DASHBOARD_FOOTER = "^Q stop stack"

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


def stack_env(state_dir: Path) -> dict[str, str]:
    """A fresh state dir, every port moved, fast retries so the failing job ends in seconds."""
    env = {"OBSERVATORY_STATE_DIR": str(state_dir), "OBSERVATORY_PROCESSORS": "2"}
    # Processor replicas take consecutive ports from PROCESSOR_HTTP: leave room for them.
    ports = iter(free_ports(len(ALL_PORTS) + 4))
    for spec in ALL_PORTS:
        env[spec.env_var] = str(next(ports))
    return env


def processes_under(state_dir: Path) -> dict[int, str]:
    """Every live process (pid -> command line) whose command or working dir is in the state dir."""
    found = {}
    marker = str(state_dir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cmdline.startswith(f"{TMUX} "):
            continue  # the test's own tmux server: its command line names the state dir
        if marker in cmdline or cwd.startswith(marker):
            found[int(entry.name)] = cmdline[:200]
    return found


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    with tmux_session() as session:
        yield session


def count_of(screen: str, status: str) -> int:
    """The per-status count the totals panel shows, e.g. "COMPLETED 20"."""
    match = re.search(rf"{status}\s+(\d+)", screen)
    return int(match.group(1)) if match else -1


def test_from_fresh_state_to_dashboard_jobs_dead_letter_retry_and_ctrl_q(
    tmux: Tmux, tmp_path: Path
) -> None:
    state_dir = Path(tmux.tmpdir) / "state"  # short: PostgreSQL's socket path is limited
    env = stack_env(state_dir)
    tmux.start(tui_command(), cwd=REPO_ROOT, size=SIZE, env=env)
    try:
        # No key presses: splash, checks, launch with progress, then the live dashboard.
        screen = tmux.wait_for_text(DASHBOARD_FOOTER, LAUNCH_TIMEOUT_S)
        lines = screen.splitlines()
        assert len(lines) <= SIZE[1] and all(len(line) <= SIZE[0] for line in lines), screen

        # N: 20 short jobs.
        tmux.keys("N")
        tmux.wait_for_text("New job", 10)
        tmux.keys("End", *["BSpace"] * 60)
        tmux.type('{"seconds": 0.1}')
        tmux.keys("Tab", "End", *["BSpace"] * 6)
        tmux.type("20")
        tmux.keys("Enter")
        tmux.wait_for_text("submitted 20", 30)
        wait_for(
            tmux.screen,
            what="20 jobs COMPLETED on the dashboard",
            until=lambda s: count_of(s, "COMPLETED") >= 20,
            timeout=JOBS_TIMEOUT_S,
        )

        # N: one job that always fails -> retries -> DEAD_LETTERED.
        tmux.keys("N")
        tmux.wait_for_text("New job", 10)
        tmux.keys("End", *["BSpace"] * 60)
        tmux.type('{"probability": 1}')
        tmux.keys("BTab")  # to the type choice
        choose_type(tmux, "fail")
        tmux.keys("Tab", "Enter")
        tmux.wait_for_text("submitted 1", 30)
        wait_for(
            tmux.screen,
            what="the failing job DEAD_LETTERED",
            until=lambda s: count_of(s, "DEAD") >= 1,
            timeout=JOBS_TIMEOUT_S,
        )

        # Its row (status filter), its detail with the timeline, then R re-queues it.
        for _ in range(8):
            if "DEAD_LETTERED" in tmux.screen().split("status:")[-1]:
                break
            tmux.keys("s")
            time.sleep(0.5)
        tmux.keys("Enter")
        seen = tmux.wait_for_text("DEAD_LETTERED", 20)
        assert "attempts  3/3" in seen and "simulated failure" in seen, seen
        for _ in range(6):  # the timeline is below the fold at 80x24: page down through it
            tmux.keys("NPage")
            time.sleep(0.5)
            seen += tmux.screen()
        timeline = seen[seen.index("job.created") :]
        for event in ("job.started", "job.retry_scheduled", "job.dead_lettered"):
            assert event in timeline, seen
        tmux.keys("R")
        tmux.wait_for_text("retry: job ", 30)  # "retry: job 1a2b3c4d is now PENDING"
        tmux.keys("Escape")
        tmux.wait_for_text(DASHBOARD_FOOTER, 10)

        # Ctrl+Q: the stack stops with progress, the program exits, nothing is left running.
        tmux.keys("C-q")
        tmux.wait_for_text("stopping", 30)
        assert tmux.wait_for_exit(STOP_TIMEOUT_S) == "EXIT=0"
    finally:
        leftovers = processes_under(state_dir)
        for pid in leftovers:  # never leave a stack behind, whatever failed above
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert leftovers == {}, leftovers


def _moved_from(before: str, selected: re.Match[str] | None) -> bool:
    return selected is not None and selected.group(1) != before


def choose_type(tmux: Tmux, name: str) -> None:
    """Moves through the type choices until `name` is selected ("(X) name")."""
    tmux.keys(*["Left"] * 8)  # the first choice, wherever the focus was
    for _ in range(12):
        selected = re.search(r"\(X\) (\w+)", tmux.screen())
        if selected and selected.group(1) == name:
            return
        tmux.keys("Right", "Space")
        # One step at a time: wait for the screen to show the new choice before the next.
        wait_for(
            lambda: re.search(r"\(X\) (\w+)", tmux.screen()),
            what="the type choice to move",
            until=partial(_moved_from, selected.group(1) if selected else ""),
            timeout=10,
        )
    raise AssertionError(f"could not select type {name}:\n{tmux.screen()}")
