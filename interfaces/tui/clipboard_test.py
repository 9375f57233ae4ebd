"""Clipboard fallbacks, with fake tools and a fake terminal."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from interfaces.tui.clipboard import copy_text, osc52


class FakeTools:
    def __init__(self, installed: set[str], working: set[str]) -> None:
        self.installed = installed
        self.working = working
        self.ran: list[tuple[list[str], str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.installed else None

    def run(self, argv: Sequence[str], text: str) -> bool:
        self.ran.append((list(argv), text))
        return argv[0] in self.working


def test_first_working_tool_copies() -> None:
    tools = FakeTools(installed={"xclip", "xsel"}, working={"xclip", "xsel"})

    result = copy_text("cmd", which=tools.which, run=tools.run)

    assert result.message == "copied (with xclip)"
    assert not result.print_on_exit
    assert tools.ran == [(["xclip", "-selection", "clipboard"], "cmd")]


def test_failing_tool_falls_through_to_the_next() -> None:
    # wl-copy is installed but there is no Wayland session, say.
    tools = FakeTools(installed={"wl-copy", "xsel"}, working={"xsel"})

    result = copy_text("cmd", which=tools.which, run=tools.run)

    assert result.message == "copied (with xsel)"
    assert [argv[0] for argv, _ in tools.ran] == ["wl-copy", "xsel"]


def test_no_tool_uses_osc52_and_still_prints() -> None:
    tools = FakeTools(installed=set(), working=set())
    written: list[str] = []

    result = copy_text("cmd", which=tools.which, run=tools.run, write_terminal=written.append)

    assert written == [osc52("cmd")]
    assert result.print_on_exit
    assert "OSC 52" in result.message


def test_nothing_available_says_it_prints_on_exit() -> None:
    tools = FakeTools(installed=set(), working=set())

    result = copy_text("cmd", which=tools.which, run=tools.run)

    assert result.message == "no clipboard: command printed on exit"
    assert result.print_on_exit


def test_osc52_sequence() -> None:
    text = "sudo apt-get install -y tmux"
    expected = "\x1b]52;c;" + base64.b64encode(text.encode()).decode() + "\x07"
    assert osc52(text) == expected
