"""What a user reads and can do on the live dashboard, rendered to text with a fake feed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
import urwid
import urwid.testing
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.dashboard import Dashboard, DashboardCallbacks
from interfaces.tui.dashboard_fakes import NOW, FakeFeed, alert, job, queues, stats
from interfaces.tui.dashboard_model import (
    AlertsSnapshot,
    Connected,
    DashboardModel,
    JobQuery,
    JobsPage,
    JobUpdate,
    QueuesUpdate,
    Reconnecting,
    StatsUpdate,
)
from interfaces.tui.dashboard_view import PALETTE
from interfaces.tui.live import Sink
from tools.launcher.api import Endpoints

SMALL = (80, 24)
LARGE = (160, 50)
ENDPOINTS = Endpoints("127.0.0.1:7001", "http://127.0.0.1:7002", "127.0.0.1:7003", "http://x")
FAILED = job_pb2.JOB_STATUS_FAILED


class Recorder:
    """The app's side: which action ran, with which job."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def callbacks(self) -> DashboardCallbacks:
        def plain(name: str) -> object:
            return lambda: self.calls.append((name, ""))

        def per_job(name: str) -> object:
            return lambda job: self.calls.append((name, job.id))

        return DashboardCallbacks(
            on_new_job=plain("new"),  # type: ignore[arg-type]
            on_detail=per_job("detail"),  # type: ignore[arg-type]
            on_cancel=per_job("cancel"),  # type: ignore[arg-type]
            on_retry=per_job("retry"),  # type: ignore[arg-type]
            on_retry_all=plain("retry_all"),  # type: ignore[arg-type]
            on_replay_dlq=plain("replay_dlq"),  # type: ignore[arg-type]
            on_web_uis=plain("web_uis"),  # type: ignore[arg-type]
            on_help=plain("help"),  # type: ignore[arg-type]
            on_quit=plain("quit"),  # type: ignore[arg-type]
            on_stop_stack=plain("stop_stack"),  # type: ignore[arg-type]
        )


class Harness:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.feeds: list[FakeFeed] = []
        self.dashboard = Dashboard(
            ENDPOINTS,
            self.recorder.callbacks(),
            feed_factory=self._feed,
            model=DashboardModel(clock=lambda: NOW),
        )
        screen = urwid.testing.ScriptedScreen(size=SMALL)
        self.loop = urwid.MainLoop(self.dashboard.widget, screen=screen)
        self.dashboard.start(self.loop)

    def _feed(self, target: str, sink: object) -> FakeFeed:
        feed = FakeFeed(target, sink)  # type: ignore[arg-type]
        self.feeds.append(feed)
        return feed

    @property
    def feed(self) -> FakeFeed:
        return self.feeds[-1]

    def push(self, *updates: object) -> None:
        self.feed.push(*updates)  # type: ignore[arg-type]
        self.dashboard.apply_pending()  # what the loop does when the pipe wakes it

    def screen(self, size: tuple[int, int] = SMALL) -> list[str]:
        canvas = self.dashboard.widget.render(size, focus=True)
        lines = [row.decode() for row in canvas.text]
        assert len(lines) == size[1]
        assert all(len(line) == size[0] for line in lines)
        return lines

    def key(self, *keys: str, size: tuple[int, int] = SMALL) -> None:
        for key in keys:
            self.dashboard.widget.keypress(size, key)

    def text(self, size: tuple[int, int] = SMALL) -> str:
        return "\n".join(self.screen(size))


JOBS = tuple(
    job(n, FAILED if n % 7 == 0 else job_pb2.JOB_STATUS_COMPLETED, last_error="boom" * (n % 7 == 0))
    for n in range(60, 0, -1)
)


@pytest.fixture
def harness() -> Iterator[Harness]:
    harness = Harness()
    harness.push(
        Connected(ENDPOINTS.read_model_grpc),
        StatsUpdate(stats()),
        JobsPage(JobQuery(), JOBS, "older"),
        QueuesUpdate(queues()),
        AlertsSnapshot((alert("HighFailureRate", summary="5% of jobs fail"),)),
    )
    yield harness
    harness.dashboard.stop()


def row_of(lines: list[str], job_id: str) -> str:
    return next(line for line in lines if job_id[:8] in line)


def test_small_terminal_shows_every_panel_and_the_footer(harness: Harness) -> None:
    lines = harness.screen(SMALL)
    text = "\n".join(lines)

    assert "LIVE" in lines[0] and "127.0.0.1:7003" in lines[0]
    assert "jobs 1205" in text and "COMPLETED 1200" in text and "FAILED 5" in text
    assert "completed/s" in text
    assert "p50/p95/p99" in text and "wait 12ms/24ms/36ms" in text
    assert "jobs.work 17/4 c2" in text and "jobs.dead 2/0 c0 DLQ" in text
    assert "[CRIT] HighFailureRate: 5% of jobs fail" in text
    assert "COMPLETED" in row_of(lines, JOBS[1].id)
    assert "FAILED" in row_of(lines, JOBS[4].id) and "boom" in row_of(lines, JOBS[4].id)
    footer = "\n".join(lines[-2:])
    for key in ("N new", "Enter detail", "C cancel", "R retry", "A retry failed", "D replay DLQ"):
        assert key in footer
    for key in ("U web UIs", "/ filter", "s status", "t type", "? help", "q quit", "^Q stop"):
        assert key in footer


def test_small_terminal_cuts_nothing_off(harness: Harness) -> None:
    harness.push(
        AlertsSnapshot(tuple(alert(f"Alert{n}", summary="a long summary " * 10) for n in range(5)))
    )
    lines = harness.screen(SMALL)

    assert lines[-1].rstrip().endswith("stop stack+quit")  # footer is the last line
    assert "+4 more alerts firing" in "\n".join(lines)
    assert sum(1 for line in lines if line.startswith(("> ", "  0000"))) >= 5  # room for jobs


def test_large_terminal_puts_panels_side_by_side_and_shows_more_rows(harness: Harness) -> None:
    small_rows = sum(1 for line in harness.screen(SMALL) if "email.send" in line)
    lines = harness.screen(LARGE)
    large_rows = sum(1 for line in lines if "email.send" in line)

    assert large_rows > 2 * small_rows
    side_by_side = next(line for line in lines if "queue " in line and "Alerts" in line)
    assert "COMPLETED" in side_by_side
    assert any("end-to-end" in line and "p99" not in line for line in lines)
    assert JOBS[0].id in "\n".join(lines)  # full ids fit


def test_feed_down_says_reconnecting_and_keeps_the_last_data(harness: Harness) -> None:
    harness.push(Reconnecting(ENDPOINTS.read_model_grpc, 3, 4.2, "read model unavailable"))
    lines = harness.screen(SMALL)

    assert "reconnecting (attempt 3, next try in 4.2s)" in lines[0]
    assert "stale" in "\n".join(lines[:2])
    assert "COMPLETED 1200" in "\n".join(lines)  # last data stays visible

    harness.push(Connected(ENDPOINTS.read_model_grpc))
    assert "LIVE" in harness.screen(SMALL)[0]


def test_live_job_change_shows_up_in_the_table(harness: Harness) -> None:
    running = job(61, job_pb2.JOB_STATUS_RUNNING)
    harness.push(JobUpdate(running))
    assert "RUNNING" in row_of(harness.screen(), running.id)

    harness.push(JobUpdate(job(61, job_pb2.JOB_STATUS_COMPLETED, updated_s=2)))
    assert "COMPLETED" in row_of(harness.screen(), running.id)


def test_slash_filters_by_text_and_escape_cancels(harness: Harness) -> None:
    harness.key("/", *"boom", "enter")
    lines = harness.screen()
    rows = [line for line in lines if "email.send" in line]

    assert "/boom" in "\n".join(lines)
    assert rows and all("FAILED" in row for row in rows)

    harness.key("/", "x", "esc")
    assert [line for line in harness.screen() if "email.send" in line] == rows


def test_status_key_requeries_the_feed_and_shows_the_filter(harness: Harness) -> None:
    harness.key("s")

    assert harness.feed.queries == [JobQuery(status=job_pb2.JOB_STATUS_PENDING)]
    assert "status=PENDING" in harness.text()
    assert "loading" in harness.text()


def test_type_key_cycles_over_the_types_in_stats(harness: Harness) -> None:
    harness.key("t", "t")

    assert [q.job_type for q in harness.feed.queries] == ["email.send", "report.build"]
    assert "type=report.build" in harness.text()


def test_paging_shows_page_two_then_asks_the_feed_for_older_jobs(harness: Harness) -> None:
    first = [line for line in harness.screen() if "email.send" in line]
    harness.key("]")
    second = [line for line in harness.screen() if "email.send" in line]

    assert "Jobs page 2" in harness.text()
    assert not set(first) & set(second)
    harness.key("page down", "page down", "page down", "page down", "page down")
    assert harness.feed.loads == [(JobQuery(), "older")]
    harness.key("[")
    assert "Jobs page" in harness.text()


def test_action_keys_go_to_the_app_with_the_selected_job(harness: Harness) -> None:
    harness.screen()
    harness.key("down")
    selected = harness.dashboard.selected_job()
    assert selected is not None and selected.id == JOBS[1].id
    assert row_of(harness.screen(), selected.id).startswith("> ")

    harness.key("enter", "C", "R", "N", "A", "D", "U", "?", "q", "ctrl q")

    assert harness.recorder.calls == [
        ("detail", selected.id),
        ("cancel", selected.id),
        ("retry", selected.id),
        ("new", ""),
        ("retry_all", ""),
        ("replay_dlq", ""),
        ("web_uis", ""),
        ("help", ""),
        ("quit", ""),
        ("stop_stack", ""),
    ]


def test_no_job_actions_without_a_selected_job() -> None:
    harness = Harness()
    harness.push(Connected("x"), JobsPage(JobQuery(), (), ""))

    harness.key("enter", "c", "r")

    assert harness.recorder.calls == []
    assert "no jobs match" in harness.text()
    harness.dashboard.stop()


class ThreadFeed(FakeFeed):
    """Delivers its first updates from its own thread, as the real feed does."""

    def start(self) -> None:
        super().start()
        thread = threading.Thread(target=self.push, args=(Connected("rm:1"), StatsUpdate(stats())))
        thread.start()
        thread.join()


def test_updates_from_the_feed_thread_wake_the_urwid_loop() -> None:
    feeds: list[ThreadFeed] = []

    def factory(target: str, sink: Sink) -> ThreadFeed:
        feeds.append(ThreadFeed(target, sink))
        return feeds[-1]

    dashboard = Dashboard(ENDPOINTS, Recorder().callbacks(), feed_factory=factory)
    screen = urwid.testing.ScriptedScreen(size=SMALL, inputs=[])
    loop = urwid.MainLoop(dashboard.widget, screen=screen)
    dashboard.start(loop)
    loop.run()
    dashboard.stop()

    assert "LIVE" in screen.last_text[0]
    assert "COMPLETED 1200" in "\n".join(screen.last_text)
    assert feeds[0].started and feeds[0].stopped


def test_remote_mode_has_no_stop_stack_key() -> None:
    callbacks = dataclasses.replace(Recorder().callbacks(), on_stop_stack=None)
    dashboard = Dashboard(ENDPOINTS, callbacks, feed_factory=FakeFeed)

    text = "\n".join(urwid.testing.render_text(dashboard.widget, SMALL))

    assert "q quit" in text and "^Q" not in text
    assert dashboard.widget.keypress(SMALL, "ctrl q") == "ctrl q"  # left to the app


def test_every_attribute_used_is_in_the_palette(harness: Harness) -> None:
    harness.push(
        AlertsSnapshot(
            (alert("a"), alert("b", rm.ALERT_SEVERITY_WARNING), alert("c", rm.ALERT_SEVERITY_INFO))
        )
    )
    names = {entry[0] for entry in PALETTE}
    canvas = harness.dashboard.widget.render(LARGE, focus=True)

    used = {attr for row in canvas.content() for attr, _cs, _text in row if attr}
    assert used <= names


@pytest.mark.parametrize("size", [SMALL, LARGE, (80, 12), (40, 24), (200, 60)])
def test_renders_exactly_the_size_it_is_given(harness: Harness, size: tuple[int, int]) -> None:
    urwid.testing.check_box_sizing(harness.dashboard.widget, cols=size[0], rows=size[1])


def test_without_colour_selection_alerts_and_reconnecting_still_stand_out() -> None:
    for name in ("dash.selected", "dash.crit", "dash.down", "dash.key"):
        spec = urwid.testing.resolve_attr(name, PALETTE, colors=1)
        assert spec.standout, name


def test_sparkline_falls_back_to_ascii_on_a_non_utf8_terminal(harness: Harness) -> None:
    previous = "utf8" if urwid.util.get_encoding_mode() == "utf8" else "ascii"
    urwid.set_encoding("ascii")
    try:
        line = next(line for line in harness.screen() if "completed/s" in line)
    finally:
        urwid.set_encoding(previous)

    assert line.isascii()
    assert "@" in line  # the peak bucket
