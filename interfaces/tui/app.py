"""The urwid application: today the prerequisite screen (later splash, launcher, dashboard).

Kept apart from `main` so that `--check` and the no-TTY report work even where urwid is missing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Protocol, TextIO

import urwid
import urwid.display.raw

from interfaces.tui.clipboard import CopyResult, WriteTerminal, copy_text
from interfaces.tui.prereq_view import PALETTE, PrereqView
from interfaces.tui.prereqs import Probes, run_checks


class Copier(Protocol):
    def __call__(self, text: str, *, write_terminal: WriteTerminal | None) -> CopyResult: ...


def _terminal_writer(screen: urwid.display.common.BaseScreen) -> WriteTerminal | None:
    if not isinstance(screen, urwid.display.raw.Screen):
        return None

    def write(data: str) -> None:
        screen.write(data)
        screen.flush()

    return write


def run_ui(
    probes: Probes,
    screen: urwid.display.common.BaseScreen | None = None,
    copier: Copier = copy_text,
    out: TextIO | None = None,
) -> None:
    """Run the screen until `q`."""

    def check_now() -> None:
        view.show_checking()
        loop.draw_screen()  # show "checking" before the (first time, slow) imports run
        view.show_checks(run_checks(probes))

    def recheck() -> None:
        check_now()
        view.set_status(f"re-checked at {time.strftime('%H:%M:%S')}")

    def copy(text: str) -> CopyResult:
        return copier(text, write_terminal=_terminal_writer(loop.screen))

    view = PrereqView(recheck=recheck, copy=copy)
    # No mouse capture, so the terminal's own selection can still copy any command shown.
    loop = urwid.MainLoop(view, PALETTE, screen=screen, handle_mouse=False)
    if os.environ.get("NO_COLOR") and isinstance(loop.screen, urwid.display.raw.Screen):
        loop.screen.set_terminal_properties(colors=1)  # https://no-color.org
    loop.set_alarm_in(0, lambda _loop, _data: check_now())
    loop.run()
    if view.print_on_exit is not None:
        # Printed after the screen is restored, so it stays in the scrollback to copy.
        print(view.print_on_exit, file=out or sys.stdout)
