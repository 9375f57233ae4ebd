"""Opening a browser never hangs or draws on the screen, and the runner hands results back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from interfaces.tui.actions import ThreadRunner, run_inline
from interfaces.tui.dialogs import has_display, open_in_browser
from interfaces.tui.gateway_client import ActionError


def test_headless_linux_has_no_browser_but_desktops_do() -> None:
    assert not has_display({}, "linux")
    assert has_display({"DISPLAY": ":0"}, "linux")
    assert has_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert has_display({}, "darwin")


def test_open_without_display_returns_false_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    began = time.monotonic()
    assert open_in_browser("http://127.0.0.1:1/") is False
    assert time.monotonic() - began < 1.0


def test_open_with_a_display_but_no_browser_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # A DISPLAY that leads nowhere and no browser on PATH: webbrowser gives up (False) or is
    # assumed to be starting (True) -- either way within the wait bound, never a hang.
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("BROWSER", raising=False)
    began = time.monotonic()
    open_in_browser("http://127.0.0.1:1/")
    assert time.monotonic() - began < 10.0


@pytest.mark.parametrize("status", [0, 1])
def test_open_uses_the_users_browser_and_reports_whether_it_took_the_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: int
) -> None:
    seen = tmp_path / "seen"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\nexit {status}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("BROWSER", str(browser))
    monkeypatch.setenv("PATH", str(tmp_path))  # no other browser to fall back on

    assert open_in_browser("http://127.0.0.1:8080/docs") is (status == 0)
    assert seen.read_text().strip() == "http://127.0.0.1:8080/docs"


def test_inline_runner_routes_results_and_errors() -> None:
    seen: list[object] = []
    run_inline(lambda: 42, seen.append, seen.append)

    def boom() -> int:
        raise ActionError("gateway unavailable: refused")

    run_inline(boom, seen.append, seen.append)
    assert seen == [42, "gateway unavailable: refused"]


def test_thread_runner_calls_back_through_call_soon_off_the_calling_thread() -> None:
    results: list[tuple[str, object]] = []
    delivered = threading.Event()
    worker_threads: list[int] = []

    def call_soon(call: Callable[[], None]) -> None:
        call()
        delivered.set()

    def work() -> int:
        worker_threads.append(threading.get_ident())
        return 7

    runner = ThreadRunner(call_soon)
    runner(work, lambda r: results.append(("done", r)), lambda m: results.append(("failed", m)))
    assert delivered.wait(5)
    delivered.clear()

    def broken() -> int:
        raise RuntimeError("bug")

    runner(broken, lambda r: results.append(("done", r)), lambda m: results.append(("failed", m)))
    assert delivered.wait(5)
    assert results == [("done", 7), ("failed", "unexpected error: RuntimeError('bug')")]
    assert worker_threads and worker_threads[0] != threading.get_ident()
