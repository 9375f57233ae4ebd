"""The whole urwid application through MainLoop, on urwid's scripted screen (no terminal).

The stack is a fake that starts instantly and slow work runs inline, so every frame is
deterministic; the real launcher and dashboard have their own tests, and the tmux test runs
them all together.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import urwid
import urwid.testing

from interfaces.tui.app import Screen, run_ui
from interfaces.tui.clipboard import CopyResult, WriteTerminal
from interfaces.tui.fakes import FakeStack, fake_probes
from interfaces.tui.prereqs import Probes
from tools.launcher.api import Endpoints

SIZE = (80, 24)
BROKEN = fake_probes(missing_binaries={"bazel", "redis-server", "tmux"}, busy_ports={5672})
HEALTHY = fake_probes()


def inline(work: Callable[[], None]) -> None:
    work()


class FakeDashboard:
    """Shows where it connects; q and ctrl q call the app's callbacks like the real one."""

    def __init__(
        self,
        endpoints: Endpoints,
        quit_app: Callable[[], None],
        stop_stack: Callable[[], None] | None,
    ) -> None:
        self.stopped = False
        owner = self

        class Body(urwid.WidgetWrap[urwid.Widget]):
            def selectable(self) -> bool:
                return True

            def keypress(self, size: tuple[int, ...], key: str) -> str | None:
                if key == "q":
                    quit_app()
                if key == "ctrl q" and stop_stack is not None:
                    stop_stack()
                return None

        text = f"DASHBOARD read model {endpoints.read_model_grpc}"
        self._widget = Body(urwid.Filler(urwid.Text(text)))
        self.owner = owner

    @property
    def widget(self) -> urwid.Widget:
        return self._widget

    def start(self, loop: urwid.MainLoop) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def run(
    inputs: list[list[str]],
    *,
    probes: Probes = HEALTHY,
    stack: FakeStack | None = None,
    local: bool = True,
    auto_launch: bool = True,
    **extra: object,
) -> tuple[list[str], str, list[FakeDashboard]]:
    scripted = urwid.testing.ScriptedScreen(size=SIZE, inputs=inputs)
    dashboards: list[FakeDashboard] = []

    def dashboard(
        endpoints: Endpoints,
        quit_app: Callable[[], None],
        stop_stack: Callable[[], None] | None,
        _call_soon: Callable[[Callable[[], None]], None],
    ) -> Screen:
        dashboards.append(FakeDashboard(endpoints, quit_app, stop_stack))
        return dashboards[-1]

    out = io.StringIO()
    run_ui(
        probes,
        stack=stack or FakeStack(),
        local=local,
        auto_launch=auto_launch,
        dashboard=dashboard,
        screen=scripted,
        background=inline,
        out=out,
        **extra,  # type: ignore[arg-type]
    )
    shown = ["\n".join(canvas.decoded_text) for canvas in scripted.canvases]
    return shown, out.getvalue(), dashboards


def test_splash_first_then_missing_prerequisites_and_copy_printed_on_exit() -> None:
    copied: list[str] = []

    def copier(text: str, *, write_terminal: WriteTerminal | None) -> CopyResult:
        copied.append(text)
        return CopyResult("no clipboard: command printed on exit", print_on_exit=True)

    stack = FakeStack()
    shown, out, dashboards = run([["c"], ["q"]], probes=BROKEN, stack=stack, copier=copier)

    assert "Distributed Task Observatory" in shown[0]
    assert "checking prerequisites..." in shown[0]
    assert "[missing] bazel" in shown[-1]
    assert "no clipboard: command printed on exit" in shown[-1]
    assert copied == ["sudo apt-get install -y bazel-bootstrap redis-server tmux"]
    assert out == "sudo apt-get install -y bazel-bootstrap redis-server tmux\n"
    # Nothing is launched while something required is missing.
    assert stack.calls == [] and dashboards == []


def test_help_closes_and_q_still_quits() -> None:
    shown, _, _ = run([["?"], ["x"], ["q"], ["r"]], probes=BROKEN)

    assert any("close this help" in frame for frame in shown)
    assert "close this help" not in shown[-1]
    assert "[missing] bazel" in shown[-1]
    assert not any("re-checked" in frame for frame in shown)


def test_everything_present_ends_on_the_dashboard_without_a_key() -> None:
    stack = FakeStack()
    shown, out, dashboards = run([["q"]], stack=stack)

    assert stack.calls == ["up"]
    assert "DASHBOARD read model 127.0.0.1:3" in shown[-1]
    assert dashboards[0].stopped
    assert "keeps running" in out and "-- down" in out


def test_a_running_stack_is_reused() -> None:
    stack = FakeStack(running=True)
    shown, _, _ = run([["q"]], stack=stack)

    assert stack.calls == []
    assert "DASHBOARD" in shown[-1]


def test_without_auto_launch_the_l_key_launches() -> None:
    stack = FakeStack()
    shown, _, _ = run([["x"], ["L"], ["q"]], stack=stack, auto_launch=False)

    assert any("press L to launch" in frame for frame in shown)
    assert stack.calls == ["up"]
    assert "DASHBOARD" in shown[-1]


def test_a_failed_launch_shows_the_component_and_its_log_and_l_retries() -> None:
    stack = FakeStack(fail_at="postgres")
    shown, _, dashboards = run([["x"], ["L"], ["q"]], stack=stack)

    failed = next(frame for frame in shown if "[FAIL]" in frame)
    assert "postgres failed: exited with status 1" in failed
    assert "FATAL: broken config" in failed
    assert "[ok]" in failed and "rabbitmq" in failed  # what did start is shown as such
    assert stack.calls == ["up", "up"]
    assert dashboards == []


def test_ctrl_q_stops_the_local_stack_with_progress() -> None:
    stack = FakeStack()
    _, out, _ = run([["ctrl q"]], stack=stack)

    assert stack.calls == ["up", "down"]
    assert not stack.running
    assert "The local stack was stopped (3 stopped, 0 already gone)." in out


def test_remote_mode_skips_prerequisites_and_launcher() -> None:
    stack = FakeStack(running=True)
    shown, out, _ = run([["ctrl q"], ["q"]], probes=BROKEN, stack=stack, local=False)

    assert not any("prerequisites" in frame and "[missing]" in frame for frame in shown)
    assert "DASHBOARD" in shown[-1]
    assert stack.calls == []  # Ctrl+Q does not stop a deployment the TUI did not start
    assert "keeps running" not in out
