"""The actions layer the app puts over its screen: forms, detail, dialogs and their gateway calls.

`ActionOverlays` wraps the app's base widget (the dashboard) and shows at most one overlay on
top; while one is open it gets every key. The app calls `open_new_job()`, `open_detail(id)`,
`cancel(id)`, `retry(id)`, `confirm_retry_all()`, `confirm_replay()`, `open_web_uis()` and
`open_help()` from its key callbacks. Network calls run through a `Runner` (a worker thread
whose result comes back on the urwid loop), so a slow or dead server never freezes the screen;
their one-line results go to `on_result` (the app's status line) or, without one, to a line
under the base widget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import urwid
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.actions_form import NewJobForm
from interfaces.tui.actions_spec import JobRequest
from interfaces.tui.detail_model import status_name
from interfaces.tui.detail_view import JobDetailDialog
from interfaces.tui.dialogs import (
    DASHBOARD_KEYS,
    Copier,
    Dialog,
    HelpDialog,
    Opener,
    Size,
    WebUisDialog,
    open_in_browser,
    replay_dialog,
    retry_all_dialog,
)
from interfaces.tui.gateway_client import ActionError, BulkCounts, ReplayOutcome

T = TypeVar("T")


class Gateway(Protocol):
    """GatewayClient's operations (a fake in widget tests)."""

    def submit(
        self, job_type: str, payload: Mapping[str, Any], count: int = 1, priority: int = 0
    ) -> list[str]: ...
    def cancel(self, job_id: str, reason: str = ...) -> job_pb2.Job: ...
    def retry(self, job_id: str) -> job_pb2.Job: ...
    def retry_failed(self) -> int: ...
    def replay_dead_letters(self) -> ReplayOutcome: ...


class ReadModel(Protocol):
    """ReadModelClient's operations (a fake in widget tests)."""

    def job_detail(self, job_id: str) -> rm.GetJobDetailResponse: ...
    def bulk_counts(self) -> BulkCounts: ...


class Runner(Protocol):
    """Runs `work` off the UI thread; then `done(result)` or `failed(message)` on it."""

    def __call__(
        self, work: Callable[[], T], done: Callable[[T], None], failed: Callable[[str], None]
    ) -> None: ...


def run_inline(
    work: Callable[[], T], done: Callable[[T], None], failed: Callable[[str], None]
) -> None:
    """A Runner for tests and scripts: everything on the calling thread."""
    try:
        result = work()
    except ActionError as error:
        failed(str(error))
        return
    done(result)


class ThreadRunner:
    """A Runner with one daemon thread per call; `call_soon` is UiDispatcher.call_soon."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], None]) -> None:
        self._call_soon = call_soon

    def __call__(
        self, work: Callable[[], T], done: Callable[[T], None], failed: Callable[[str], None]
    ) -> None:
        def run() -> None:
            try:
                result = work()
            except ActionError as error:
                message = str(error)
                self._call_soon(lambda: failed(message))
                return
            except Exception as error:  # a bug must not kill the screen silently
                message = f"unexpected error: {error!r}"
                self._call_soon(lambda: failed(message))
                return
            self._call_soon(lambda: done(result))

        threading.Thread(target=run, name="tui-action", daemon=True).start()


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ActionOverlays(urwid.WidgetWrap[urwid.Widget]):
    def __init__(
        self,
        base: urwid.Widget,
        *,
        gateway: Gateway,
        read_model: ReadModel,
        web_uis: Mapping[str, str],
        runner: Runner = run_inline,
        opener: Opener = open_in_browser,
        copy: Copier | None = None,
        on_result: Callable[[str], None] | None = None,
        help_keys: tuple[tuple[str, str], ...] = DASHBOARD_KEYS,
    ) -> None:
        self._base = base
        self._gateway = gateway
        self._read_model = read_model
        self._web_uis = dict(web_uis)
        self.runner = runner  # replaceable once the loop exists (ThreadRunner needs it)
        self._opener = opener
        self._copy = copy
        self._on_result = on_result
        self._help_keys = help_keys
        self._result = urwid.Text("", wrap="clip")  # one line, under the screen
        self._overlay: Dialog | None = None
        self.last_result = ""
        super().__init__(self._layout())

    # -- what the app calls ---------------------------------------------------------------------

    @property
    def overlay(self) -> Dialog | None:
        """The open overlay, if any (for the app and tests)."""
        return self._overlay

    def close(self) -> None:
        self._overlay = None
        self._w = self._layout()

    def open_new_job(self) -> None:
        self._open(NewJobForm(on_submit=self._submit, on_close=self.close))

    def open_detail(self, job_id: str) -> None:
        dialog = JobDetailDialog(
            job_id, on_close=self.close, on_retry=self.retry, on_cancel=self.cancel
        )
        self._open(dialog)
        self._load_detail(dialog)

    def cancel(self, job_id: str) -> None:
        self._job_action("cancel", job_id, self._gateway.cancel)

    def retry(self, job_id: str) -> None:
        self._job_action("retry", job_id, self._gateway.retry)

    def confirm_retry_all(self, counts: BulkCounts | None = None) -> None:
        """Asks first, with the counts (fetched from the read model when not given; if it
        cannot answer, the question says so and still offers the action)."""

        def ask(known: BulkCounts | None, why: str) -> None:
            failed, dead = (None, None) if known is None else (known.failed, known.dead_lettered)
            dialog = retry_all_dialog(
                failed, dead, on_yes=self._retry_all, on_close=self.close, unknown_because=why
            )
            self._open(dialog)

        self._with_counts(counts, ask)

    def confirm_replay(self, counts: BulkCounts | None = None) -> None:
        """Asks first, with the dead-letter queue's depth (as confirm_retry_all)."""

        def ask(known: BulkCounts | None, why: str) -> None:
            messages, dead = (
                (None, None) if known is None else (known.dead_letter_messages, known.dead_lettered)
            )
            dialog = replay_dialog(
                messages, dead, on_yes=self._replay, on_close=self.close, unknown_because=why
            )
            self._open(dialog)

        self._with_counts(counts, ask)

    def open_web_uis(self) -> None:
        self._open(WebUisDialog(self._web_uis, self.close, opener=self._opener, copy=self._copy))

    def open_help(self) -> None:
        self._open(HelpDialog(self.close, screen_keys=self._help_keys))

    # -- urwid ---------------------------------------------------------------------------------

    def selectable(self) -> bool:
        return True

    def keypress(self, size: Size, key: str) -> str | None:
        if self._overlay is not None:
            self._overlay.keypress(self._overlay_size(size), key)
            return None  # modal: nothing reaches the screen below
        unhandled: str | None = self._w.keypress(size, key)
        return unhandled

    # -- internals -----------------------------------------------------------------------------

    def _overlay_size(self, size: Size) -> Size:
        # Overlay.keypress would compute it; calling the dialog directly needs it done here.
        if len(size) != 2 or self._overlay is None:
            return size
        cols, rows = size
        if self._overlay.box:
            return (cols, rows - self._result_rows())
        return (cols,)

    def _result_rows(self) -> int:
        return 1 if self._result.text and self._on_result is None else 0

    def _layout(self) -> urwid.Widget:
        below: urwid.Widget = self._base
        if self._result_rows():
            below = urwid.Frame(self._base, footer=self._result)
        if self._overlay is None:
            return below
        if self._overlay.box:
            return urwid.Overlay(
                self._overlay,
                below,
                urwid.CENTER,
                (urwid.RELATIVE, 100),
                urwid.TOP,
                (urwid.RELATIVE, 100),
            )
        return urwid.Overlay(
            self._overlay, below, urwid.CENTER, (urwid.RELATIVE, 100), urwid.MIDDLE, urwid.PACK
        )

    def _open(self, dialog: Dialog) -> None:
        self._overlay = dialog
        self._w = self._layout()

    def _report(self, message: str, attr: str = "act.ok") -> None:
        self.last_result = message
        if self._on_result is not None:
            self._on_result(message)
        else:
            self._result.set_text((attr, message))
            self._w = self._layout()

    def _fail(self, message: str) -> None:
        self._report(message, "act.error")

    def _submit(self, request: JobRequest) -> None:
        form = self._overlay
        assert isinstance(form, NewJobForm)
        form.set_busy(f"submitting {plural(request.count, 'job')}...")

        def work() -> list[str]:
            return self._gateway.submit(
                request.job_type, request.payload, request.count, request.priority
            )

        def done(ids: list[str]) -> None:
            if self._overlay is form:
                self.close()
            self._report(f"submitted {plural(len(ids), 'job')} ({request.job_type})")

        def failed(message: str) -> None:
            if self._overlay is form:
                form.set_error(message)  # the form stays, so the input can be fixed
            else:
                self._fail(message)

        self.runner(work, done, failed)

    def _load_detail(self, dialog: JobDetailDialog) -> None:
        def failed(message: str) -> None:
            if self._overlay is dialog:
                dialog.show_error(message)

        def done(detail: rm.GetJobDetailResponse) -> None:
            if self._overlay is dialog:
                dialog.show_detail(detail)

        self.runner(lambda: self._read_model.job_detail(dialog.job_id), done, failed)

    def _job_action(self, verb: str, job_id: str, call: Callable[[str], job_pb2.Job]) -> None:
        dialog = self._overlay if isinstance(self._overlay, JobDetailDialog) else None

        def done(job: job_pb2.Job) -> None:
            message = f"{verb}: job {job_id[:8]} is now {status_name(job.status)}"
            if job.cancel_requested and verb == "cancel":
                message = f"cancel requested: job {job_id[:8]} stops when its attempt does"
            if dialog is not None and self._overlay is dialog:
                dialog.set_status(("act.ok", message))
                self._load_detail(dialog)
            self._report(message)

        def failed(message: str) -> None:
            if dialog is not None and self._overlay is dialog:
                dialog.set_status(("act.error", f"{verb} failed: {message}"))
            self._fail(f"{verb} failed: {message}")

        self.runner(lambda: call(job_id), done, failed)

    def _with_counts(
        self, counts: BulkCounts | None, ask: Callable[[BulkCounts | None, str], None]
    ) -> None:
        if counts is not None:
            ask(counts, "")
            return
        self.runner(
            self._read_model.bulk_counts,
            lambda known: ask(known, ""),
            lambda message: ask(None, message),
        )

    def _retry_all(self) -> None:
        self._report("re-queueing failed and dead-lettered jobs...", "act.busy")
        self.runner(
            self._gateway.retry_failed,
            lambda n: self._report(f"re-queued {plural(n, 'job')}"),
            lambda m: self._fail(f"retry all failed: {m}"),
        )

    def _replay(self) -> None:
        self._report("replaying the dead-letter queue...", "act.busy")
        self.runner(
            self._gateway.replay_dead_letters,
            lambda outcome: self._report(outcome.summary()),
            lambda m: self._fail(f"replay failed: {m}"),
        )
