"""urwid screen for the prerequisite check.

Knows nothing about how checks run: it is handed results (`show_checks`) and callbacks for
re-checking and copying, so it renders the same in tests as on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import urwid
from urwid.widget.widget import AbstractFlowWidget as FlowWidget

from interfaces.tui.clipboard import CopyResult
from interfaces.tui.prereqs import (
    MARKERS,
    Check,
    Status,
    combined_install_command,
    summary,
)
from interfaces.tui.report import (
    INSTALL_ALL_LABEL,
    MARKER_WIDTH,
    NAME_WIDTH,
    PURPOSE_LABEL,
    SUBTITLE,
    TITLE,
)

# (name, 16-colour fg, bg, monochrome). Every state also has a text marker, so colour only helps.
# Colours that read on dark and light backgrounds alike (no white, yellow or light grey text).
PALETTE: list[tuple[str, str, str, str]] = [
    ("title", "default,bold", "default", "bold"),
    ("group", "default,bold,underline", "default", "bold,underline"),
    ("ok", "dark green", "default", ""),
    ("missing", "dark red,bold", "default", "bold"),
    ("warning", "brown,bold", "default", "bold"),
    ("label", "default", "default", ""),
    ("command", "dark cyan,bold", "default", "bold"),
    ("note", "dark cyan", "default", ""),
    ("status", "brown,bold", "default", "bold"),
    ("footer", "black", "light gray", "standout"),
    ("key", "dark blue,bold", "light gray", "standout,bold"),
]

STATUS_ATTR = {Status.OK: "ok", Status.MISSING: "missing", Status.WARNING: "warning"}

KEYS: tuple[tuple[str, str], ...] = (
    ("q", "quit"),
    ("r", "re-check"),
    ("c", "copy install command"),
    ("?", "help"),
    ("up/down PgUp/PgDn", "scroll"),
)

HELP_TEXT = """\
Keys
  q                  quit
  r                  run every check again (after installing something)
  c                  copy the apt-get command for every missing package:
                     wl-copy, xclip or xsel if present, else OSC 52 to the
                     terminal; if not confirmed it is printed when you quit
  ?                  this help
  up/down PgUp/PgDn  scroll the list (Home/End: top/bottom)

Markers
  [ok]       found / free
  [missing]  required: the local stack cannot run without it
  [warn]     may run, but look first (for example a busy port)

Plain text (CI, no terminal): ./bazelw run //interfaces:tui -- --check
prints the same report and exits 1 when something required is missing.

Press any key to close this help."""

Markup = str | tuple[str, str] | list[str | tuple[str, str]]


def _fix_markup(label: str, command: str, note: str) -> Markup:
    parts: list[str | tuple[str, str]] = [("label", f"{label}: "), ("command", command)]
    if note:
        parts.append(("note", f"  # {note}"))
    return parts


def check_rows(check: Check) -> list[FlowWidget]:
    """The table rows of one check: the check line, then for a problem what to run."""
    marker = urwid.Text((STATUS_ATTR[check.status], MARKERS[check.status]))
    line = urwid.Columns(
        [(MARKER_WIDTH, marker), (NAME_WIDTH, urwid.Text(check.name)), urwid.Text(check.detail)]
    )
    rows: list[FlowWidget] = [line]
    if check.status is not Status.OK:
        extra: list[Markup] = [[("label", f"{PURPOSE_LABEL}: "), check.purpose]]
        extra += [_fix_markup(fix.label, fix.command, fix.note) for fix in check.fixes]
        rows += [urwid.Padding(urwid.Text(markup), left=MARKER_WIDTH) for markup in extra]
    return rows


def table_rows(checks: Sequence[Check]) -> list[FlowWidget]:
    rows: list[FlowWidget] = []
    group: str | None = None
    for check in checks:
        if check.group != group:
            if group is not None:
                rows.append(urwid.Divider())
            rows.append(urwid.Text(("group", check.group)))
            group = check.group
        rows += check_rows(check)
    return rows


def keys_markup() -> Markup:
    parts: list[str | tuple[str, str]] = []
    for key, action in KEYS:
        parts += [("key", key), f" {action}  "]
    return parts


class PrereqView(urwid.WidgetWrap[urwid.Widget]):
    """Title, scrollable table of checks, summary, combined command, status and keys."""

    def __init__(
        self,
        *,
        recheck: Callable[[], None],
        copy: Callable[[str], CopyResult],
    ) -> None:
        self._recheck = recheck
        self._copy = copy
        self._checks: list[Check] = []
        self._status = ""
        self._summary_widgets: list[urwid.Widget] = []
        self.print_on_exit: str | None = None  # printed by the app once the screen is gone
        # ASCII scrollbar, rules and borders: the screen reads the same without UTF-8.
        self._walker: urwid.SimpleFocusListWalker[FlowWidget] = urwid.SimpleFocusListWalker([])
        body = urwid.ScrollBar(urwid.ListBox(self._walker), thumb_char="#", trough_char="|")
        header = urwid.Pile(
            [urwid.Text(("title", TITLE)), urwid.Text(SUBTITLE), urwid.Divider("-")]
        )
        self._footer = urwid.Pile([])
        self._frame = urwid.Frame(body, header=header, footer=self._footer)
        super().__init__(self._frame)
        self.show_checking()

    @property
    def checks(self) -> list[Check]:
        return list(self._checks)

    @property
    def help_open(self) -> bool:
        return self._w is not self._frame

    def show_checking(self) -> None:
        self._walker[:] = [urwid.Text("checking prerequisites...")]
        self._summary_widgets = [urwid.Text(("status", "checking..."))]
        self._refresh_footer()

    def show_checks(self, checks: Sequence[Check]) -> None:
        self._checks = list(checks)
        position = self._walker.focus or 0
        self._walker[:] = table_rows(self._checks)
        self._walker.set_focus(min(position, len(self._walker) - 1))
        self._summary_widgets = self._summary()
        self._refresh_footer()

    def set_status(self, message: str) -> None:
        self._status = message
        self._refresh_footer()

    def _summary(self) -> list[urwid.Widget]:
        statuses = {check.status for check in self._checks}
        worst = next(
            (s for s in (Status.MISSING, Status.WARNING) if s in statuses),
            Status.OK,
        )
        widgets: list[urwid.Widget] = [urwid.Text((STATUS_ATTR[worst], summary(self._checks)))]
        command = combined_install_command(self._checks)
        if command is not None:
            widgets.append(urwid.Text(_fix_markup(INSTALL_ALL_LABEL, command, "")))
        return widgets

    def _refresh_footer(self) -> None:
        widgets: list[urwid.Widget] = [urwid.Divider("-"), *self._summary_widgets]
        if self._status:
            widgets.append(urwid.Text(("status", self._status)))
        widgets.append(urwid.AttrMap(urwid.Text(keys_markup()), "footer"))
        self._footer.contents[:] = [(w, self._footer.options()) for w in widgets]

    def _copy_install_command(self) -> None:
        command = combined_install_command(self._checks)
        if command is None:
            self.set_status("nothing to copy: no system package is missing")
            return
        result = self._copy(command)
        if result.print_on_exit:
            self.print_on_exit = command
        self.set_status(result.message)

    def _open_help(self) -> None:
        box = urwid.LineBox(
            urwid.Padding(urwid.Text(HELP_TEXT), left=1, right=1),
            title="Help",
            tlcorner="+",
            tline="-",
            lline="|",
            trcorner="+",
            blcorner="+",
            rline="|",
            bline="-",
            brcorner="+",
        )
        # PACK: exactly as tall as the text, which fits 80x24.
        self._w = urwid.Overlay(
            box,
            self._frame,
            align=urwid.CENTER,
            width=(urwid.RELATIVE, 100),
            valign=urwid.MIDDLE,
            height=urwid.PACK,
        )

    def selectable(self) -> bool:
        # Always take keys: the help overlay is not selectable, and MainLoop only sends keys
        # to a selectable top widget, so without this `q` would be dead while help is open.
        return True

    def keypress(self, size: tuple[int, int] | tuple[int] | tuple[()], key: str) -> str | None:
        if self.help_open:
            self._w = self._frame  # any key closes the help
            return None
        if key in ("q", "Q"):
            raise urwid.ExitMainLoop
        if key == "r":
            self._recheck()
            return None
        if key == "c":
            self._copy_install_command()
            return None
        if key == "?":
            self._open_help()
            return None
        return super().keypress(size, key)
