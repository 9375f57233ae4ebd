"""What a user reads and can do on the 80x24 prerequisite screen (rendered to text, no terminal)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import urwid
import urwid.testing

from interfaces.tui.clipboard import CopyResult
from interfaces.tui.fakes import fake_probes
from interfaces.tui.prereq_view import PALETTE, STATUS_ATTR, PrereqView
from interfaces.tui.prereqs import Check, run_checks

SIZE = (80, 24)


def screen(view: urwid.Widget) -> list[str]:
    canvas = view.render(SIZE, focus=True)
    lines = [row.decode() for row in canvas.text]
    assert len(lines) == 24
    assert all(len(line) == 80 for line in lines)
    return lines


def scroll_to(view: urwid.Widget, needle: str) -> list[str]:
    """Page down from the top until `needle` is on screen; fail if it never is."""
    view.keypress(SIZE, "home")
    for _ in range(20):
        lines = screen(view)
        if any(needle in line for line in lines):
            return lines
        view.keypress(SIZE, "page down")
    pytest.fail(f"{needle!r} never appeared on screen")


class Recorder:
    def __init__(self, result: CopyResult | None = None) -> None:
        self.rechecks = 0
        self.copied: list[str] = []
        self.result = result or CopyResult("copied (with xclip)", print_on_exit=False)

    def recheck(self) -> None:
        self.rechecks += 1

    def copy(self, text: str) -> CopyResult:
        self.copied.append(text)
        return self.result


def make_view(checks: Sequence[Check], recorder: Recorder | None = None) -> PrereqView:
    recorder = recorder or Recorder()
    view = PrereqView(recheck=recorder.recheck, copy=recorder.copy)
    view.show_checks(checks)
    return view


BROKEN = fake_probes(missing_binaries={"bazel", "redis-server", "tmux"}, busy_ports={5672})


def test_title_table_and_markers_read_without_colour() -> None:
    lines = screen(make_view(run_checks(BROKEN)))

    assert "Distributed Task Observatory - prerequisites" in lines[0]
    assert any(line.startswith("[missing] bazel") for line in lines)
    assert any(line.startswith("[ok]      rabbitmq-server") for line in lines)


def test_missing_item_and_its_exact_command_are_on_one_line() -> None:
    view = make_view(run_checks(BROKEN))

    lines = scroll_to(view, "[missing] redis-server")
    assert any(line.startswith("[missing] redis-server") for line in lines)
    assert any("fix: sudo apt-get install -y redis-server" in line for line in lines)


def test_busy_port_shows_who_wants_it_and_what_to_do() -> None:
    view = make_view(run_checks(BROKEN))

    lines = scroll_to(view, "[warn]    port 5672")
    text = "\n".join(lines)
    assert "[warn]    port 5672" in text
    assert "needed for: RabbitMQ AMQP" in text
    assert "see who holds it: ss -ltnp 'sport = :5672'" in text
    assert "or move it: export OBSERVATORY_RABBITMQ_AMQP_PORT=5673" in text


def test_every_fix_command_fits_unwrapped_at_80_columns() -> None:
    view = make_view(
        run_checks(
            fake_probes(
                missing_binaries={"bazel", "prometheus-alertmanager"},
                missing_modules={"prometheus_client"},
                busy_ports={50052, 15692},
            )
        )
    )
    for check in view.checks:
        for fix in check.fixes:
            scroll_to(view, fix.as_line())


def test_footer_has_summary_combined_command_and_keys() -> None:
    lines = screen(make_view(run_checks(BROKEN)))
    footer = "\n".join(lines[-6:])

    assert "3 missing: bazel, redis-server, tmux; 1 warning: port 5672" in footer
    install = "sudo apt-get install -y bazel-bootstrap redis-server tmux"
    assert f"install all: {install}" in footer
    assert "q quit  r re-check  c copy install command  ? help" in lines[-1]


def test_all_good_summary() -> None:
    lines = screen(make_view(run_checks(fake_probes())))

    assert any("all 34 checks passed" in line for line in lines)
    assert not any("install all" in line for line in lines)


def test_checking_state_before_results() -> None:
    view = PrereqView(recheck=lambda: None, copy=Recorder().copy)

    assert any("checking prerequisites..." in line for line in screen(view))


def test_arrow_keys_and_page_keys_scroll_the_table() -> None:
    view = make_view(run_checks(BROKEN))
    top = screen(view)[3:18]

    for _ in range(3):
        assert view.keypress(SIZE, "down") is None
    scrolled = screen(view)[3:18]
    assert scrolled != top

    view.keypress(SIZE, "page down")
    assert screen(view)[3:18] != scrolled
    for _ in range(10):
        view.keypress(SIZE, "page up")
    assert screen(view)[3:18] == top


def test_q_quits() -> None:
    view = make_view(run_checks(BROKEN))

    with pytest.raises(urwid.ExitMainLoop):
        view.keypress(SIZE, "q")


def test_r_asks_for_a_recheck() -> None:
    recorder = Recorder()
    view = make_view(run_checks(BROKEN), recorder)

    view.keypress(SIZE, "r")

    assert recorder.rechecks == 1


def test_show_checks_replaces_the_table() -> None:
    view = make_view(run_checks(BROKEN))

    view.show_checks(run_checks(fake_probes()))

    assert not any("[missing]" in line for line in screen(view))


def test_c_copies_the_combined_command_and_says_so() -> None:
    recorder = Recorder()
    view = make_view(run_checks(BROKEN), recorder)

    view.keypress(SIZE, "c")

    assert recorder.copied == ["sudo apt-get install -y bazel-bootstrap redis-server tmux"]
    assert any("copied (with xclip)" in line for line in screen(view)[-6:])
    assert view.print_on_exit is None


def test_c_without_clipboard_prints_on_exit() -> None:
    recorder = Recorder(CopyResult("no clipboard: command printed on exit", print_on_exit=True))
    view = make_view(run_checks(BROKEN), recorder)

    view.keypress(SIZE, "c")

    assert any("no clipboard: command printed on exit" in line for line in screen(view))
    assert view.print_on_exit == "sudo apt-get install -y bazel-bootstrap redis-server tmux"


def test_c_with_nothing_missing() -> None:
    recorder = Recorder()
    view = make_view(run_checks(fake_probes()), recorder)

    view.keypress(SIZE, "c")

    assert recorder.copied == []
    assert any("nothing to copy" in line for line in screen(view))


def test_help_opens_and_any_key_closes_it() -> None:
    view = make_view(run_checks(BROKEN))

    view.keypress(SIZE, "?")
    lines = screen(view)
    assert view.help_open
    assert any("Press any key to close this help." in line for line in lines)

    # q closes the help rather than quitting from under it.
    view.keypress(SIZE, "q")
    assert not view.help_open
    assert not any("close this help" in line for line in screen(view))


def test_status_markers_carry_colour_attributes() -> None:
    view = make_view(run_checks(BROKEN))
    runs = urwid.testing.render_runs(view, SIZE, focus=True)

    marker_attrs = {
        text.strip(): attr for row in runs for attr, text in row if text.startswith("[")
    }
    assert marker_attrs["[missing]"] == "missing"
    assert marker_attrs["[ok]"] == "ok"
    palette_names = {entry[0] for entry in PALETTE}
    assert set(STATUS_ATTR.values()) <= palette_names
