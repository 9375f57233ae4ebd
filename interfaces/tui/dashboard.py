"""The live dashboard screen as the app uses it: model + view + feed, wired to the urwid loop.

The feed runs in its own threads; its updates are queued here and a `watch_pipe` wakes the
urwid loop, which applies them to the model and redraws (urwid is not thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import urwid
import urwid.display.raw
from observatory.jobs.v1 import job_pb2

from interfaces.tui.dashboard_model import DashboardModel, JobQuery, Update
from interfaces.tui.dashboard_view import PALETTE, DashboardView, ViewActions
from interfaces.tui.live import LiveFeed, Sink
from tools.launcher.api import Endpoints


@dataclass(frozen=True)
class DashboardCallbacks:
    """The app's actions; the dashboard only dispatches the keys to them."""

    on_new_job: Callable[[], None]
    on_detail: Callable[[job_pb2.Job], None]
    on_cancel: Callable[[job_pb2.Job], None]
    on_retry: Callable[[job_pb2.Job], None]
    on_retry_all: Callable[[], None]
    on_replay_dlq: Callable[[], None]
    on_web_uis: Callable[[], None]
    on_help: Callable[[], None]
    on_quit: Callable[[], None]
    # Ctrl+Q: stop the local stack, then quit; None (remote mode: not ours to stop) hides it.
    on_stop_stack: Callable[[], None] | None = None


class Feed(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def set_query(self, query: JobQuery) -> None: ...

    def load_more(self, query: JobQuery, page_token: str) -> None: ...


FeedFactory = Callable[[str, Sink], Feed]


def live_feed(target: str, sink: Sink) -> Feed:
    return LiveFeed(target, sink)


def _free_ctrl_q(screen: urwid.display.common.BaseScreen) -> None:
    """Ctrl+Q is XON to a terminal with flow control on, and never reaches the app: turn the
    flow-control keys off (the screen restores the terminal's settings when it stops)."""
    if isinstance(screen, urwid.display.raw.Screen):
        with contextlib.suppress(OSError, termios.error):  # not a terminal (tests, pipes)
            screen.tty_signal_keys(start="undefined", stop="undefined")


class Dashboard:
    """`widget` goes into the app's loop; `start(loop)` begins following the read model.

    dashboard = Dashboard(endpoints, DashboardCallbacks(on_new_job=..., ...))
    loop.widget = dashboard.widget
    dashboard.start(loop)  # registers the palette, watches a pipe, starts the feed
    ...
    dashboard.stop()  # stops the feed threads, removes the pipe
    """

    def __init__(
        self,
        endpoints: Endpoints,
        callbacks: DashboardCallbacks,
        feed_factory: FeedFactory = live_feed,
        model: DashboardModel | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.model = model or DashboardModel()
        self.model.connection.endpoint = endpoints.read_model_grpc
        self._feed: Feed | None = None
        self._factory = feed_factory
        self._lock = threading.Lock()
        self._pending: list[Update] = []
        self._pipe: int | None = None
        self._loop: urwid.MainLoop | None = None
        self.view = DashboardView(
            self.model,
            ViewActions(
                requery=self._requery,
                load_more=self._load_more,
                new_job=callbacks.on_new_job,
                detail=callbacks.on_detail,
                cancel=callbacks.on_cancel,
                retry=callbacks.on_retry,
                retry_all=callbacks.on_retry_all,
                replay_dlq=callbacks.on_replay_dlq,
                web_uis=callbacks.on_web_uis,
                help=callbacks.on_help,
                quit=callbacks.on_quit,
                stop_stack=callbacks.on_stop_stack,
            ),
        )

    @property
    def widget(self) -> urwid.Widget:
        return self.view

    def selected_job(self) -> job_pb2.Job | None:
        return self.model.selected_job()

    def start(self, loop: urwid.MainLoop) -> None:
        loop.screen.register_palette(PALETTE)
        _free_ctrl_q(loop.screen)
        self._loop = loop
        self._pipe = loop.watch_pipe(self._wake)
        self._feed = self._factory(self.endpoints.read_model_grpc, self.post)
        self._feed.start()

    def stop(self) -> None:
        if self._feed is not None:
            self._feed.stop()
            self._feed = None
        if self._loop is not None and self._pipe is not None:
            self._loop.remove_watch_pipe(self._pipe)
        self._pipe = None
        self._loop = None

    def post(self, update: Update) -> None:
        """The feed's sink (any thread): queue the update and wake the loop once."""
        with self._lock:
            self._pending.append(update)
            wake = len(self._pending) == 1 and self._pipe is not None
            pipe = self._pipe
        if wake and pipe is not None:
            with contextlib.suppress(OSError):  # the loop is gone: nothing left to draw
                os.write(pipe, b"!")

    def apply_pending(self) -> None:
        """Applies queued updates to the model (on the UI thread) and redraws."""
        with self._lock:
            updates, self._pending = self._pending, []
        for update in updates:
            self.model.apply(update)
        self.view.refresh()

    def _wake(self, _data: bytes) -> bool:
        self.apply_pending()
        return True  # keep the pipe

    def _requery(self, query: JobQuery) -> None:
        if self._feed is not None:
            self._feed.set_query(query)

    def _load_more(self, query: JobQuery, token: str) -> None:
        if self._feed is not None:
            self._feed.load_more(query, token)
