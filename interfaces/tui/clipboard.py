"""Copy text to the clipboard with whatever this machine has.

Tries the usual clipboard tools, then OSC 52 (the terminal sets the clipboard; works over SSH
in terminals that allow it, but cannot be confirmed, so the text is printed on exit as well).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# (argv, text) -> True when the tool took the text.
RunTool = Callable[[Sequence[str], str], bool]
Which = Callable[[str], str | None]
WriteTerminal = Callable[[str], None]

TOOLS: tuple[tuple[str, ...], ...] = (
    ("wl-copy",),
    ("xclip", "-selection", "clipboard"),
    ("xsel", "-b", "-i"),
)
_TOOL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CopyResult:
    message: str  # what happened, for the footer
    print_on_exit: bool  # True unless a tool confirmed the copy


def run_tool(argv: Sequence[str], text: str) -> bool:
    try:
        # stdout/stderr to /dev/null: xclip and wl-copy fork a daemon that would keep a pipe
        # open (and hang us), and nothing may scribble over the urwid screen.
        done = subprocess.run(
            list(argv),
            input=text.encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def osc52(text: str) -> str:
    """The escape sequence asking the terminal to put `text` on the clipboard."""
    return "\x1b]52;c;" + base64.b64encode(text.encode()).decode("ascii") + "\x07"


def copy_text(
    text: str,
    *,
    which: Which = shutil.which,
    run: RunTool = run_tool,
    write_terminal: WriteTerminal | None = None,
) -> CopyResult:
    for argv in TOOLS:
        if which(argv[0]) is not None and run(argv, text):
            return CopyResult(f"copied (with {argv[0]})", print_on_exit=False)
    if write_terminal is not None:
        write_terminal(osc52(text))
        return CopyResult("sent to terminal clipboard (OSC 52); also printed on exit", True)
    return CopyResult("no clipboard: command printed on exit", print_on_exit=True)
