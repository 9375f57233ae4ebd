"""The urwid application: splash -> prerequisites -> local stack -> live dashboard.

Kept apart from `main` so that `--check` and the no-TTY report work even where urwid is missing.
Slow work (launching, stopping, live data) runs in worker threads and reaches the screen through
`UiDispatcher`; everything that touches widgets runs on the main loop.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

import urwid
import urwid.display.raw

from interfaces.tui.clipboard import CopyResult, WriteTerminal, copy_text
from interfaces.tui.launcher_view import LauncherView
from interfaces.tui.prereq_view import PALETTE, PrereqView
from interfaces.tui.prereqs import Probes, required_ok, run_checks
from interfaces.tui.splash import splash
from interfaces.tui.ui_thread import UiDispatcher
from tools.launcher.api import Endpoints, LaunchError, Progress, Stack

STOPPED_NOTE = "The local stack was stopped ({stopped} stopped, {gone} already gone)."
KEPT_NOTE = (
    "The local stack keeps running. Stop it with Ctrl+Q in the dashboard or\n"
    "  ./bazelw run //tools:observatory -- down"
)


class Copier(Protocol):
    def __call__(self, text: str, *, write_terminal: WriteTerminal | None) -> CopyResult: ...


class Screen(Protocol):
    """What the app needs of the dashboard (interfaces.tui.dashboard.Dashboard)."""

    @property
    def widget(self) -> urwid.Widget: ...
    def start(self, loop: urwid.MainLoop) -> None: ...
    def stop(self) -> None: ...


Action = Callable[[], None]
# (endpoints, quit, stop the local stack (None in remote mode), UiDispatcher.call_soon)
# -> the live screen
DashboardFactory = Callable[[Endpoints, Action, Action | None, Callable[[Action], None]], Screen]


# Runs slow work (launch, stop) off the main loop; tests pass one that runs it inline.
Background = Callable[[Callable[[], None]], None]


def start_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, daemon=True).start()


def _terminal_writer(screen: urwid.display.common.BaseScreen) -> WriteTerminal | None:
    if not isinstance(screen, urwid.display.raw.Screen):
        return None

    def write(data: str) -> None:
        screen.write(data)
        screen.flush()

    return write


class App:
    """The screens in order, and what moves the user from one to the next."""

    def __init__(
        self,
        *,
        probes: Probes,
        stack: Stack,
        local: bool,
        auto_launch: bool,
        dashboard: DashboardFactory,
        screen: urwid.display.common.BaseScreen | None = None,
        copier: Copier = copy_text,
        background: Background = start_thread,
    ) -> None:
        self._background = background
        self._probes = probes
        self._stack = stack
        self._local = local
        self._auto_launch = auto_launch
        self._dashboard_factory = dashboard
        self._copier = copier
        self._dashboard: Screen | None = None
        self._launcher: LauncherView | None = None
        self.exit_messages: list[str] = []  # printed once the screen is restored
        next_step = "checking prerequisites..." if local else "connecting..."
        self.loop = urwid.MainLoop(splash(next_step), PALETTE, screen=screen, handle_mouse=False)
        self._ui = UiDispatcher(self.loop)

    def run(self) -> None:
        if isinstance(self.loop.screen, urwid.display.raw.Screen) and os.environ.get("NO_COLOR"):
            self.loop.screen.set_terminal_properties(colors=1)  # https://no-color.org
        self.loop.set_alarm_in(0, lambda _loop, _data: self._first_step())
        try:
            self.loop.run()
        finally:
            if self._dashboard is not None:
                self._dashboard.stop()
            self._ui.close()

    # ----- steps ------------------------------------------------------------------------------

    def _first_step(self) -> None:
        if not self._local:
            self._open_dashboard(self._stack.status().endpoints)
            return
        self.loop.draw_screen()  # the splash, before the (first time, slow) checks
        checks = run_checks(self._probes)
        if required_ok(checks):
            self._open_launcher()
            return
        view = PrereqView(recheck=lambda: self._recheck(view), copy=self._copy)
        view.show_checks(checks)
        self.loop.widget = view

    def _recheck(self, view: PrereqView) -> None:
        view.show_checking()
        self.loop.draw_screen()
        checks = run_checks(self._probes)
        view.show_checks(checks)
        view.set_status(f"re-checked at {time.strftime('%H:%M:%S')}")
        if required_ok(checks):
            self._open_launcher()

    def _copy(self, text: str) -> CopyResult:
        result = self._copier(text, write_terminal=_terminal_writer(self.loop.screen))
        if result.print_on_exit and text not in self.exit_messages:
            self.exit_messages.append(text)
        return result

    def _open_launcher(self) -> None:
        status = self._stack.status()
        self._launcher = LauncherView(launch=self._launch, state_dir=status.state_dir)
        self._launcher.show_status(status)
        self.loop.widget = urwid.AttrMap(self._launcher, None)
        if status.running:
            self._open_dashboard(status.endpoints)
        elif self._auto_launch:
            self._launch()

    def _launch(self) -> None:
        view = self._launcher
        assert view is not None
        view.starting()

        def work() -> None:
            try:
                status = self._stack.up(self._progress_to(view))
            except LaunchError as error:
                failure = error  # `error` itself is unbound once the except block ends
                self._ui.call_soon(lambda: view.failed(failure))
                return
            self._ui.call_soon(lambda: self._open_dashboard(status.endpoints))

        self._background(work)

    def _progress_to(self, view: LauncherView) -> Callable[[Progress], None]:
        return lambda step: self._ui.call_soon(lambda: view.on_progress(step))

    def _open_dashboard(self, endpoints: Endpoints) -> None:
        stop = self._stop_stack if self._local else None
        self._dashboard = self._dashboard_factory(endpoints, self._quit, stop, self._ui.call_soon)
        self.loop.widget = self._dashboard.widget
        self._dashboard.start(self.loop)

    def _quit(self) -> None:
        if self._local:
            self.exit_messages.append(KEPT_NOTE)
        raise urwid.ExitMainLoop

    def _stop_stack(self) -> None:
        """Ctrl+Q: back to the stack screen, stop everything with progress, then exit."""
        if self._dashboard is not None:
            self._dashboard.stop()
            self._dashboard = None
        view = LauncherView(launch=lambda: None, state_dir=self._stack.status().state_dir)
        self._launcher = view
        view.show_status(self._stack.status())
        view.stopping()
        self.loop.widget = view

        def work() -> None:
            report = self._stack.down(self._progress_to(view))
            message = STOPPED_NOTE.format(
                stopped=len(report.stopped), gone=len(report.already_gone)
            )
            self.exit_messages.append(message)
            self._ui.call_soon(self._exit)

        self._background(work)

    def _exit(self) -> None:
        raise urwid.ExitMainLoop


def run_ui(
    probes: Probes,
    *,
    stack: Stack,
    local: bool,
    auto_launch: bool,
    dashboard: DashboardFactory,
    screen: urwid.display.common.BaseScreen | None = None,
    copier: Copier = copy_text,
    background: Background = start_thread,
    out: TextIO | None = None,
) -> None:
    """Runs the screens until the user quits; then prints what must stay in the scrollback."""
    app = App(
        probes=probes,
        stack=stack,
        local=local,
        auto_launch=auto_launch,
        dashboard=dashboard,
        screen=screen,
        copier=copier,
        background=background,
    )
    app.run()
    for message in app.exit_messages:
        print(message, file=out or sys.stdout)
