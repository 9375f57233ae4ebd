"""urwid screen of the local stack: what runs, what is starting, what failed and why.

It is handed a `StackStatus` and `Progress` steps (from `Stack.up` / `Stack.down` running in a
worker thread) and callbacks for the keys, so it renders the same in tests as on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

import urwid
from urwid.widget.widget import AbstractFlowWidget as FlowWidget

from tools.launcher.api import ComponentState, ComponentStatus, LaunchError, Progress, StackStatus

TITLE = "Distributed Task Observatory - local stack"
NAME_WIDTH = 16
MARKER_WIDTH = 8
TIME_WIDTH = 8
LOG_TAIL_LINES = 8

# A text marker per state: the screen reads the same without colour.
MARKERS: dict[ComponentState, tuple[str, str]] = {
    ComponentState.STOPPED: ("[--]", "label"),
    ComponentState.STARTING: ("[..]", "status"),
    ComponentState.RUNNING: ("[ok]", "ok"),
    ComponentState.RESTARTING: ("[rst]", "warning"),
    ComponentState.FAILED: ("[FAIL]", "missing"),
    ComponentState.STOPPING: ("[stop]", "status"),
    ComponentState.EXTERNAL: ("[ext]", "ok"),
}

KEYS: tuple[tuple[str, str], ...] = (("L", "launch local stack"), ("q", "quit"))


class LauncherView(urwid.WidgetWrap[urwid.Widget]):
    """Component table with live progress, a status line, the failure's log tail and keys."""

    def __init__(self, *, launch: Callable[[], None], state_dir: str = "") -> None:
        self._launch = launch
        self._rows: dict[str, tuple[ComponentState, float, str]] = {}
        self._busy = False
        self._walker: urwid.SimpleFocusListWalker[FlowWidget] = urwid.SimpleFocusListWalker([])
        self._status = urwid.Text("")
        self._failure = urwid.Pile([])
        where = f"state and logs: {state_dir}" if state_dir else ""
        header = urwid.Pile([urwid.Text(("title", TITLE)), urwid.Text(where), urwid.Divider("-")])
        keys: list[str | tuple[str, str]] = []
        for key, action in KEYS:
            keys += [("key", key), f" {action}  "]
        footer = urwid.Pile(
            [
                urwid.Divider("-"),
                self._status,
                self._failure,
                urwid.AttrMap(urwid.Text(keys), "footer"),
            ]
        )
        body = urwid.ListBox(self._walker)
        super().__init__(urwid.Frame(body, header=header, footer=footer))
        self.set_status("the local stack is not running; press L to launch it")

    @property
    def busy(self) -> bool:
        """True while `up` or `down` runs: L is ignored then."""
        return self._busy

    def show_status(self, status: StackStatus) -> None:
        for component in status.components:
            self._rows[component.name] = (component.state, component.since_s, _detail(component))
        self._redraw_rows()

    def starting(self) -> None:
        self._busy = True
        self._failure.contents[:] = []
        self.set_status("launching the local stack...")

    def stopping(self) -> None:
        self._busy = True
        self.set_status("stopping the local stack...")

    def on_progress(self, step: Progress) -> None:
        self._rows[step.component] = (step.state, step.elapsed_s, step.detail)
        self._redraw_rows()
        running = sum(1 for state, _, _ in self._rows.values() if state is ComponentState.RUNNING)
        verb = (
            "stopping"
            if step.state in (ComponentState.STOPPING, ComponentState.STOPPED)
            else ("launching")
        )
        self.set_status(
            f"{verb}: {step.component} {step.state.value} ({running} of {len(self._rows)} running)"
        )

    def done(self, message: str) -> None:
        self._busy = False
        self.set_status(message)

    def failed(self, error: LaunchError) -> None:
        self._busy = False
        _, elapsed, _ = self._rows.get(error.component, (None, 0.0, ""))
        self._rows[error.component] = (ComponentState.FAILED, elapsed, error.reason)
        self._redraw_rows()
        self.set_status(f"{error.component} failed: {error.reason}  (L tries again)")
        tail = error.log_tail.splitlines()[-LOG_TAIL_LINES:]
        widgets: list[urwid.Widget] = [
            urwid.Text(("missing", f"last lines of {error.component}'s log:"))
        ]
        widgets += [urwid.Text(line, wrap="clip") for line in tail]
        self._failure.contents[:] = [(w, self._failure.options()) for w in widgets]

    def set_status(self, message: str) -> None:
        self._status.set_text(("status", message))

    def _redraw_rows(self) -> None:
        rows: list[FlowWidget] = [
            urwid.Columns(
                [
                    (MARKER_WIDTH, urwid.Text("")),
                    (NAME_WIDTH, urwid.Text(("group", "component"))),
                    (TIME_WIDTH, urwid.Text(("group", "time"), align="right")),
                    urwid.Text(("group", "  detail")),
                ]
            )
        ]
        for name, (state, elapsed, detail) in self._rows.items():
            marker, attr = MARKERS[state]
            rows.append(
                urwid.Columns(
                    [
                        (MARKER_WIDTH, urwid.Text((attr, marker))),
                        (NAME_WIDTH, urwid.Text(name, wrap="clip")),
                        (TIME_WIDTH, urwid.Text(f"{elapsed:5.1f}s", align="right")),
                        urwid.Text(
                            f"  {state.value}{': ' + detail if detail else ''}", wrap="clip"
                        ),
                    ]
                )
            )
        self._walker[:] = rows

    def keypress(self, size: tuple[int, int] | tuple[int] | tuple[()], key: str) -> str | None:
        if key in ("L", "l"):
            if not self._busy:
                self._launch()
            return None
        if key in ("q", "Q"):
            raise urwid.ExitMainLoop
        return super().keypress(size, key)


def _detail(component: ComponentStatus) -> str:
    parts = [component.detail] if component.detail else []
    if component.pid:
        parts.append(f"pid {component.pid}")
    if component.ports:
        parts.append("ports " + " ".join(str(port) for port in component.ports))
    if component.restarts:
        parts.append(f"{component.restarts} restarts")
    return ", ".join(parts)
