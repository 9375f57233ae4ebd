"""Small overlays: the ASCII frame they share, confirmation, help, and the web UIs list.

Every overlay closes with Esc, fits 80x24, and says everything in text (colour only helps).
Frames are drawn with ASCII so they read the same without UTF-8.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import urwid
from urwid.widget.widget import AbstractFlowWidget as FlowWidget

# (name, 16-colour fg, bg, monochrome); prefixed so they never clash with the dashboard's.
PALETTE: list[tuple[str, str, str, str]] = [
    ("act.title", "default,bold", "default", "bold"),
    ("act.label", "default,bold", "default", "bold"),
    ("act.error", "dark red,bold", "default", "bold"),
    ("act.ok", "dark green", "default", ""),
    ("act.busy", "brown,bold", "default", "bold"),
    ("act.dim", "dark gray", "default", ""),
    ("act.url", "dark cyan,bold", "default", "bold"),
    ("act.focus", "black", "light gray", "standout"),
    ("act.edit", "default,underline", "default", "underline"),
    ("act.key", "dark blue,bold", "default", "bold"),
]

Markup = str | tuple[str, str] | list[str | tuple[str, str]]
Size = tuple[int, int] | tuple[int] | tuple[()]

ESCAPE_KEYS = ("esc",)


class CopyOutcome(Protocol):
    """What a copy reports (clipboard.CopyResult fits)."""

    @property
    def message(self) -> str: ...


Copier = Callable[[str], CopyOutcome]


def framed(body: urwid.Widget, title: str) -> urwid.LineBox[urwid.Widget]:
    """`body` in an ASCII box titled `title`."""
    return urwid.LineBox(
        body,
        title=title,
        tlcorner="+",
        tline="-",
        lline="|",
        trcorner="+",
        blcorner="+",
        rline="|",
        bline="-",
        brcorner="+",
    )


def keys_line(keys: Sequence[tuple[str, str]]) -> urwid.Text:
    parts: list[str | tuple[str, str]] = []
    for key, action in keys:
        parts += [("act.key", key), f" {action}  "]
    return urwid.Text(parts)


class Dialog(urwid.WidgetWrap[urwid.Widget]):
    """Base of every overlay: `box` says whether it fills the screen or packs to its text."""

    box = False
    title = ""

    def __init__(self, widget: urwid.Widget, on_close: Callable[[], None]) -> None:
        self._on_close = on_close
        super().__init__(widget)

    def close(self) -> None:
        self._on_close()

    def selectable(self) -> bool:
        return True  # takes keys even when nothing inside is selectable (Esc must work)

    def keypress(self, size: Size, key: str) -> str | None:
        if key in ESCAPE_KEYS:
            self.close()
            return None
        unhandled: str | None = super().keypress(size, key) if self._w.selectable() else key
        return unhandled


class ConfirmDialog(Dialog):
    """A yes/no question: y or Enter confirms, n or Esc cancels; either closes it."""

    def __init__(
        self,
        title: str,
        question: str,
        explanation: Sequence[str],
        *,
        on_yes: Callable[[], None],
        on_close: Callable[[], None],
    ) -> None:
        self.title = title
        self._on_yes = on_yes
        rows: list[urwid.Widget] = [urwid.Text(("act.title", question))]
        rows += [urwid.Text(line) for line in explanation]
        rows += [urwid.Divider(), keys_line((("y/Enter", "yes"), ("n/Esc", "no")))]
        body = urwid.Padding(urwid.Pile(rows), left=1, right=1)
        super().__init__(framed(body, title), on_close)

    def keypress(self, size: Size, key: str) -> str | None:
        if key in ("y", "Y", "enter"):
            self.close()
            self._on_yes()
            return None
        if key in ("n", "N", *ESCAPE_KEYS):
            self.close()
            return None
        return None  # modal: nothing else leaks to the screen below


def retry_all_dialog(
    failed: int | None,
    dead_lettered: int | None,
    *,
    on_yes: Callable[[], None],
    on_close: Callable[[], None],
    unknown_because: str = "",
) -> ConfirmDialog:
    """Counts None (the read model could not say): asks about "every" job and says why."""
    if failed is None or dead_lettered is None:
        question = "Re-queue every failed and dead-lettered job?"
        first = f"Counts unavailable ({unknown_because}); all of them run again."
    else:
        question = f"Re-queue {failed} failed and {dead_lettered} dead-lettered jobs?"
        first = f"All {failed + dead_lettered} go back to PENDING with a fresh attempt budget."
    explanation = [
        first,
        "Cancelled jobs are left alone.",
        "(Counts from the read model; jobs failing meanwhile are included too.)",
    ]
    return ConfirmDialog(
        "Retry all failed", question, explanation, on_yes=on_yes, on_close=on_close
    )


def replay_dialog(
    messages: int | None,
    dead_lettered: int | None,
    *,
    on_yes: Callable[[], None],
    on_close: Callable[[], None],
    unknown_because: str = "",
) -> ConfirmDialog:
    if messages is None or dead_lettered is None:
        question = "Replay every message of the dead-letter queue jobs.dead?"
        first = f"Counts unavailable ({unknown_because})."
    else:
        question = f"Replay {messages} messages from the dead-letter queue jobs.dead?"
        first = f"Jobs still dead-lettered ({dead_lettered} now) are re-queued and run again."
    explanation = [
        first,
        "Messages of jobs already retried are removed as stale.",
        "Anything that is not a job (poison) stays in the queue and is reported.",
    ]
    return ConfirmDialog(
        "Replay dead letters", question, explanation, on_yes=on_yes, on_close=on_close
    )


DASHBOARD_KEYS: tuple[tuple[str, str], ...] = (
    ("N", "submit new jobs (form)"),
    ("Enter", "detail of the selected job"),
    ("C", "cancel the selected job"),
    ("R", "retry the selected job"),
    ("A", "retry all failed and dead-lettered jobs"),
    ("D", "replay the dead-letter queue"),
    ("U", "web UIs (open in a browser or show the URL)"),
    ("/", "filter jobs"),
    ("s / t", "filter by status / type"),
    ("[ ]", "previous / next page"),
    ("?", "this help"),
    ("q", "quit (the stack keeps running)"),
    ("Ctrl+Q", "stop the local stack and quit"),
)
DIALOG_KEYS: tuple[tuple[str, str], ...] = (
    ("Esc", "close any window"),
    ("Tab / up / down", "move between fields"),
    ("Enter", "submit the form / confirm / open"),
    ("y / n", "answer a confirmation"),
    ("R / C", "retry / cancel, in the job detail"),
    ("PgUp / PgDn", "scroll the job detail"),
    ("c", "copy the URL, in the web UIs list"),
)


class HelpDialog(Dialog):
    """Every key and what it does; scrollable, Esc or q or ? closes."""

    box = True
    title = "Help"

    def __init__(
        self,
        on_close: Callable[[], None],
        *,
        screen_keys: Sequence[tuple[str, str]] = DASHBOARD_KEYS,
        dialog_keys: Sequence[tuple[str, str]] = DIALOG_KEYS,
    ) -> None:
        width = max(len(key) for key, _ in (*screen_keys, *dialog_keys)) + 2

        def rows(keys: Sequence[tuple[str, str]]) -> list[FlowWidget]:
            return [
                urwid.Columns([(width, urwid.Text(("act.key", key))), urwid.Text(action)])
                for key, action in keys
            ]

        lines: list[FlowWidget] = [urwid.Text(("act.label", "Dashboard"))]
        lines += rows(screen_keys)
        lines += [urwid.Text(("act.label", "In windows"))]
        lines += rows(dialog_keys)
        lines += [urwid.Text(("act.dim", "Esc, q or ? closes this help."))]
        self._list = urwid.ListBox(urwid.SimpleFocusListWalker(lines))
        super().__init__(framed(urwid.Padding(self._list, left=1, right=1), "Help"), on_close)

    def keypress(self, size: Size, key: str) -> str | None:
        if key in ("q", "?", *ESCAPE_KEYS):
            self.close()
            return None
        super().keypress(size, key)
        return None


# -- web UIs -------------------------------------------------------------------------------------

Opener = Callable[[str], bool]  # URL -> True when a browser took it
_BROWSER_WAIT_S = 3.0
# `python -m webbrowser` exits 0 even when no browser took the URL; this says which it was.
_OPEN_SCRIPT = "import sys, webbrowser; sys.exit(0 if webbrowser.open_new_tab(sys.argv[1]) else 1)"


def has_display(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a graphical browser could show anything here (not on a headless Linux box)."""
    if platform in ("darwin", "win32"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def open_in_browser(url: str) -> bool:
    """Opens `url` with Python's `webbrowser` in a detached, silent child process.

    Not in this process: with no graphical browser `webbrowser` may start a console one (lynx,
    w3m) on our terminal, and a graphical one may print onto the screen. Waits a few seconds
    at most: a browser that is still starting then is assumed to be opening the page.
    """
    if not has_display(os.environ):
        return False
    try:
        child = subprocess.Popen(  # fixed argv: this interpreter and a URL
            [sys.executable, "-c", _OPEN_SCRIPT, url],
            # Without TERM, webbrowser never picks a console browser (lynx, w3m, ...).
            env={k: v for k, v in os.environ.items() if k != "TERM"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        return child.wait(timeout=_BROWSER_WAIT_S) == 0
    except subprocess.TimeoutExpired:
        return True


class WebUisDialog(Dialog):
    """The stack's web UIs: Enter opens the chosen one, or shows its URL when no browser can."""

    box = True
    title = "Web UIs"

    def __init__(
        self,
        web_uis: Mapping[str, str],
        on_close: Callable[[], None],
        *,
        opener: Opener = open_in_browser,
        copy: Copier | None = None,
    ) -> None:
        self._opener = opener
        self._copy = copy
        self._status = urwid.Text("")
        rows: list[FlowWidget] = []
        self._urls: list[str] = []
        name_width = max((len(name) for name in web_uis), default=0) + 2
        for name, url in web_uis.items():
            row = urwid.Columns([(name_width, urwid.Text(name)), urwid.Text(("act.url", url))])
            rows.append(urwid.AttrMap(_Choice(row), None, focus_map="act.focus"))
            self._urls.append(url)
        if not rows:
            rows.append(urwid.Text("No web UIs are known for this stack."))
        self._list = urwid.ListBox(urwid.SimpleFocusListWalker(rows))
        keys = [("Enter", "open"), ("Esc", "close")]
        if copy is not None:
            keys.insert(1, ("c", "copy URL"))
        footer = urwid.Pile([urwid.Divider("-"), self._status, keys_line(keys)])
        frame: urwid.Frame[urwid.Widget, None, urwid.Pile] = urwid.Frame(self._list, footer=footer)
        super().__init__(framed(urwid.Padding(frame, left=1, right=1), "Web UIs"), on_close)

    @property
    def status(self) -> str:
        return str(self._status.text)

    def chosen_url(self) -> str | None:
        position = self._list.focus_position if self._urls else None
        return None if position is None else self._urls[int(position)]

    def keypress(self, size: Size, key: str) -> str | None:
        url = self.chosen_url()
        if key == "enter" and url is not None:
            if self._opener(url):
                self._status.set_text(("act.ok", f"opened in your browser: {url}"))
            else:
                self._status.set_text(
                    [("act.busy", "no browser here; open this URL yourself: "), ("act.url", url)]
                )
            return None
        if key == "c" and url is not None and self._copy is not None:
            self._status.set_text(self._copy(url).message)
            return None
        return super().keypress(size, key)


class _Choice(urwid.WidgetWrap[urwid.Widget]):
    """A row the list can focus, marked "> " when it has the focus (readable without colour)."""

    def __init__(self, row: urwid.Widget) -> None:
        self._marker = urwid.Text("  ")
        super().__init__(urwid.Columns([(2, self._marker), row]))

    def selectable(self) -> bool:
        return True

    def render(self, size: Size, focus: bool = False) -> urwid.Canvas:
        self._marker.set_text("> " if focus else "  ")
        return super().render(size, focus)

    def keypress(self, size: Size, key: str) -> str | None:
        return key
