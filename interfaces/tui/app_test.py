"""The whole urwid application through MainLoop, on urwid's scripted screen (no terminal)."""

from __future__ import annotations

import io

import urwid
import urwid.testing

from interfaces.tui.app import run_ui
from interfaces.tui.clipboard import CopyResult, WriteTerminal
from interfaces.tui.fakes import fake_probes

SIZE = (80, 24)
BROKEN = fake_probes(missing_binaries={"bazel", "redis-server", "tmux"}, busy_ports={5672})


def frames(scripted: urwid.testing.ScriptedScreen) -> list[str]:
    return ["\n".join(row.decode() for row in canvas.text) for canvas in scripted.canvases]


def test_checking_first_then_results_and_copy_printed_on_exit() -> None:
    scripted = urwid.testing.ScriptedScreen(size=SIZE, inputs=[["c"], ["q"]])
    copied: list[str] = []

    def copier(text: str, *, write_terminal: WriteTerminal | None) -> CopyResult:
        copied.append(text)
        return CopyResult("no clipboard: command printed on exit", print_on_exit=True)

    out = io.StringIO()
    run_ui(BROKEN, screen=scripted, copier=copier, out=out)

    shown = frames(scripted)
    # The "checking" frame comes before the (first time, slow) check.
    assert "checking prerequisites..." in shown[0]
    assert "[missing] bazel" in shown[-1]
    assert "no clipboard: command printed on exit" in shown[-1]
    assert copied == ["sudo apt-get install -y bazel-bootstrap redis-server tmux"]
    assert out.getvalue() == "sudo apt-get install -y bazel-bootstrap redis-server tmux\n"


def test_help_closes_and_q_still_quits() -> None:
    # MainLoop only sends keys to a selectable top widget: the help overlay must not swallow
    # them. The "r" queued after "q" must never run.
    scripted = urwid.testing.ScriptedScreen(size=SIZE, inputs=[["?"], ["x"], ["q"], ["r"]])

    run_ui(BROKEN, screen=scripted, out=io.StringIO())

    shown = frames(scripted)
    assert any("close this help" in frame for frame in shown)
    assert "close this help" not in shown[-1]
    assert "[missing] bazel" in shown[-1]
    assert not any("re-checked" in frame for frame in shown)


def test_r_rechecks() -> None:
    # The re-check draws "checking..." itself, which makes ScriptedScreen feed the next batch
    # before the idle redraw; "home" gives the loop one more draw before "q".
    scripted = urwid.testing.ScriptedScreen(size=SIZE, inputs=[["r"], ["home"], ["q"]])

    run_ui(BROKEN, screen=scripted, out=io.StringIO())

    assert "re-checked at" in frames(scripted)[-1]
