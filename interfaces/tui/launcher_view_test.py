"""The local-stack screen rendered to text, as a user reads it at 80x24."""

from __future__ import annotations

import urwid
import urwid.testing

from interfaces.tui.launcher_view import LauncherView
from tools.launcher.api import (
    ComponentState,
    ComponentStatus,
    Endpoints,
    LaunchError,
    Progress,
    StackStatus,
)

SIZE = (80, 24)
ENDPOINTS = Endpoints("127.0.0.1:50051", "http://127.0.0.1:8080", "127.0.0.1:50052", "")


def text(view: LauncherView) -> str:
    return "\n".join(urwid.testing.render_text(view, SIZE))


def stopped_stack() -> StackStatus:
    names = ("rabbitmq", "postgres", "redis", "mongo", "gateway", "processor-1")
    components = tuple(ComponentStatus(name, ComponentState.STOPPED) for name in names)
    return StackStatus("local", False, components, ENDPOINTS, "/home/u/.local/state/observatory")


def test_before_launch_it_says_how_to_launch_and_where_state_lives() -> None:
    view = LauncherView(launch=lambda: None, state_dir="/home/u/.local/state/observatory")
    view.show_status(stopped_stack())

    screen = text(view)
    assert "state and logs: /home/u/.local/state/observatory" in screen
    assert "press L to launch" in screen
    assert "[--]    processor-1" in screen
    assert "L launch local stack" in screen.splitlines()[-1]


def test_progress_shows_each_component_state_and_elapsed_time() -> None:
    view = LauncherView(launch=lambda: None)
    view.show_status(stopped_stack())
    view.starting()
    view.on_progress(Progress("rabbitmq", ComponentState.RUNNING, 6.8, "healthy"))
    view.on_progress(Progress("postgres", ComponentState.STARTING, 1.25))

    screen = text(view)
    assert "[ok]    rabbitmq            6.8s  running: healthy" in screen
    assert "[..]    postgres            1.2s  starting" in screen
    assert "launching: postgres starting (1 of 6 running)" in screen


def test_a_failure_names_the_component_and_shows_its_log_tail() -> None:
    view = LauncherView(launch=lambda: None)
    view.show_status(stopped_stack())
    view.starting()
    log = "\n".join(f"line {n}" for n in range(20)) + "\nFATAL: could not bind port 5432"
    view.failed(LaunchError("postgres", "not healthy after 30 s", log))

    screen = text(view)
    assert "[FAIL]  postgres" in screen
    assert "postgres failed: not healthy after 30 s  (L tries again)" in screen
    assert "FATAL: could not bind port 5432" in screen
    assert "line 19" in screen and "line 5" not in screen  # only the tail
    assert not view.busy


def test_the_l_key_launches_once_while_busy() -> None:
    launches: list[str] = []
    view = LauncherView(launch=lambda: launches.append("up"))
    urwid.testing.press(view, SIZE, "L")
    view.starting()
    urwid.testing.press(view, SIZE, "L")

    assert launches == ["up"]


def test_stopping_progress() -> None:
    view = LauncherView(launch=lambda: None)
    view.show_status(stopped_stack())
    view.stopping()
    view.on_progress(Progress("gateway", ComponentState.STOPPED, 0.4))

    assert "stopping: gateway stopped" in text(view)
