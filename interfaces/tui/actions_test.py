"""What a user reads and can do in each action overlay at 80x24 (rendered to text, no terminal):
the new-job form, the job detail, confirmations, web UIs and help, over a stand-in screen."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urwid
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.actions import ActionOverlays, run_inline
from interfaces.tui.actions_form import NewJobForm
from interfaces.tui.clipboard import CopyResult
from interfaces.tui.detail_view import JobDetailDialog
from interfaces.tui.gateway_client import ActionError, BulkCounts, Kept, ReplayOutcome

SIZE = (80, 24)
JOB_ID = str(uuid.UUID(int=7))
WEB_UIS = {
    "gateway API docs": "http://127.0.0.1:8080/docs",
    "RabbitMQ management": "http://127.0.0.1:15672/",
}


def screen(widget: urwid.Widget) -> list[str]:
    canvas = widget.render(SIZE, focus=True)
    lines = [row.decode() for row in canvas.text]
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    return lines


def text(widget: urwid.Widget) -> str:
    return "\n".join(screen(widget))


def press(widget: urwid.Widget, *keys: str) -> None:
    for key in keys:
        widget.keypress(SIZE, key)


def type_into(edit: urwid.Edit, value: str) -> None:
    edit.set_edit_text(value)


class FakeGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_with: str | None = None
        self.replay = ReplayOutcome((JOB_ID,), 1, (Kept("not a job message: x", "", ""),))

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail_with is not None:
            raise ActionError(self.fail_with)

    def submit(
        self, job_type: str, payload: Mapping[str, Any], count: int = 1, priority: int = 0
    ) -> list[str]:
        self._call("submit", job_type, dict(payload), count, priority)
        return [str(uuid.uuid4()) for _ in range(count)]

    def cancel(self, job_id: str, reason: str = "") -> job_pb2.Job:
        self._call("cancel", job_id)
        return job_pb2.Job(id=job_id, status=job_pb2.JOB_STATUS_CANCELLED)

    def retry(self, job_id: str) -> job_pb2.Job:
        self._call("retry", job_id)
        return job_pb2.Job(id=job_id, status=job_pb2.JOB_STATUS_PENDING)

    def retry_failed(self) -> int:
        self._call("retry_failed")
        return 5

    def replay_dead_letters(self) -> ReplayOutcome:
        self._call("replay")
        return self.replay


T0 = datetime(2026, 11, 27, 15, 0, 0, tzinfo=UTC)


def event(seconds: float, **payload: Any) -> event_pb2.EventEnvelope:
    envelope = event_pb2.EventEnvelope(job_id=JOB_ID, **payload)
    envelope.occurred_at.FromDatetime(T0 + timedelta(seconds=seconds))
    return envelope


def detail() -> rm.GetJobDetailResponse:
    job = job_pb2.Job(
        id=JOB_ID,
        type="fail",
        status=job_pb2.JOB_STATUS_DEAD_LETTERED,
        attempts=2,
        max_attempts=2,
        priority=4,
        worker="processor-1/ab12",
        last_error="simulated failure (attempt 2)",
    )
    job.payload.update({"until_attempt": 3, "message": "simulated failure"})
    job.created_at.FromDatetime(T0)
    job.updated_at.FromDatetime(T0 + timedelta(seconds=2))
    attempts = []
    for number in (1, 2):
        attempt = job_pb2.JobAttempt(
            job_id=JOB_ID,
            number=number,
            outcome=job_pb2.ATTEMPT_OUTCOME_FAILED,
            error=f"simulated failure (attempt {number})",
        )
        attempt.started_at.FromDatetime(T0 + timedelta(seconds=number * 0.5))
        attempt.finished_at.FromDatetime(T0 + timedelta(seconds=number * 0.5 + 0.25))
        attempts.append(attempt)
    retry = event_pb2.JobRetryScheduled(attempt=1, error="simulated failure (attempt 1)")
    retry.delay.FromMilliseconds(200)
    events = [  # deliberately not in time order: the view sorts the timeline
        event(1.3, job_dead_lettered=event_pb2.JobDeadLettered(reason="max attempts", attempts=2)),
        event(0.0, job_created=event_pb2.JobCreated(max_attempts=2)),
        event(0.5, job_started=event_pb2.JobStarted(attempt=1, worker="processor-1/ab12")),
        event(0.75, job_retry_scheduled=retry),
        event(1.0, job_started=event_pb2.JobStarted(attempt=2, worker="processor-1/ab12")),
    ]
    return rm.GetJobDetailResponse(job=job, attempts=attempts, events=events)


class FakeReadModel:
    def __init__(self) -> None:
        self.counts = BulkCounts(failed=3, dead_lettered=2, dead_letter_messages=4)
        self.detail_calls = 0
        self.down = False

    def job_detail(self, job_id: str) -> rm.GetJobDetailResponse:
        self.detail_calls += 1
        if job_id != JOB_ID:
            raise ActionError(f"job {job_id} not found")
        return detail()

    def bulk_counts(self) -> BulkCounts:
        if self.down:
            raise ActionError("read model unavailable: connection refused")
        return self.counts


class Base(urwid.WidgetWrap[urwid.Widget]):
    """Stands in for the dashboard: records the keys that reach it."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        super().__init__(urwid.Filler(urwid.Text("DASHBOARD"), valign=urwid.TOP))

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        self.keys.append(key)
        return None


class Opener:
    def __init__(self, works: bool) -> None:
        self.works = works
        self.opened: list[str] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        return self.works


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def read_model() -> FakeReadModel:
    return FakeReadModel()


@pytest.fixture
def base() -> Base:
    return Base()


def make(
    base: Base,
    gateway: FakeGateway,
    read_model: FakeReadModel,
    opener: Opener | None = None,
    copied: list[str] | None = None,
) -> ActionOverlays:
    def copy(url: str) -> CopyResult:
        if copied is not None:
            copied.append(url)
        return CopyResult("copied (with xclip)", print_on_exit=False)

    return ActionOverlays(
        base,
        gateway=gateway,
        read_model=read_model,
        web_uis=WEB_UIS,
        opener=opener or Opener(works=False),
        copy=copy,
    )


def form_of(actions: ActionOverlays) -> NewJobForm:
    assert isinstance(actions.overlay, NewJobForm)
    return actions.overlay


# -- new job form ------------------------------------------------------------------------------


def test_form_shows_every_field_the_types_and_keys(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    shown = text(actions)
    for label in ("New job", "type", "payload", "count", "priority", "Submit", "Cancel"):
        assert label in shown
    for job_type in ("cpu", "echo", "fail", "noop", "sleep"):
        assert job_type in shown
    assert "payload fields: seconds (number 0..3600, required)" in shown
    assert "Enter submit  Tab next field  Esc cancel" in shown


def test_invalid_payload_is_named_inline_and_nothing_is_sent(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    form = form_of(actions)
    type_into(form.payload, "{}")
    type_into(form.count, "0")
    press(actions, "enter")

    shown = text(actions)
    assert "payload.seconds: required number" in shown
    assert "count: must be 1..10000" in shown
    assert "2 problem(s): nothing was sent" in shown
    assert gateway.calls == []
    assert actions.overlay is form  # still open, to fix the input


def test_non_object_payload_is_refused(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    type_into(form_of(actions).payload, '"just a string"')
    press(actions, "enter")
    assert "payload: must be a JSON object {...}" in text(actions)


def test_valid_form_submits_closes_and_reports_one_line(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    form = form_of(actions)
    form.choose_type("echo")
    type_into(form.payload, '{"message": "hi"}')
    type_into(form.count, "20")
    type_into(form.priority, "9")
    press(actions, "enter")

    assert gateway.calls == [("submit", "echo", {"message": "hi"}, 20, 9)]
    assert actions.overlay is None
    lines = screen(actions)
    assert "DASHBOARD" in lines[0]
    assert "submitted 20 jobs (echo)" in lines[-1]


def test_choosing_a_type_offers_its_template(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    form = form_of(actions)
    form.choose_type("cpu")
    assert form.payload.edit_text == '{"rounds": 1}'
    assert "payload fields: rounds (integer 1..1e+08, required)" in text(actions)


def test_gateway_error_keeps_the_form_and_shows_the_message(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    gateway.fail_with = "gateway unavailable: connection refused"
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    press(actions, "enter")
    assert actions.overlay is not None
    assert "gateway unavailable: connection refused" in text(actions)


def test_esc_cancels_the_form_without_sending(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    press(actions, "esc")
    assert actions.overlay is None and gateway.calls == []
    assert base.keys == []  # the overlay swallowed its keys


# -- confirmations -----------------------------------------------------------------------------


def test_retry_all_asks_with_the_counts_and_n_cancels(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.confirm_retry_all()  # counts fetched from the read model
    shown = text(actions)
    assert "Re-queue 3 failed and 2 dead-lettered jobs?" in shown
    assert "y/Enter yes  n/Esc no" in shown
    press(actions, "n")
    assert actions.overlay is None and gateway.calls == []


def test_retry_all_confirmed_reports_how_many(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.confirm_retry_all(BulkCounts(failed=1, dead_lettered=4, dead_letter_messages=0))
    assert "Re-queue 1 failed and 4 dead-lettered jobs?" in text(actions)
    press(actions, "y")
    assert gateway.calls == [("retry_failed",)]
    assert "re-queued 5 jobs" in screen(actions)[-1]


def test_replay_asks_with_the_queue_depth_and_reports_the_outcome(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.confirm_replay()
    assert "Replay 4 messages from the dead-letter queue jobs.dead?" in text(actions)
    press(actions, "enter")
    assert gateway.calls == [("replay",)]
    assert "replayed 1 dead-lettered job(s); 1 stale message(s) removed; 1 kept" in text(actions)


def test_without_counts_the_question_says_why_and_still_offers_the_action(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    read_model.down = True
    actions = make(base, gateway, read_model)
    actions.confirm_retry_all()
    shown = text(actions)
    assert "Re-queue every failed and dead-lettered job?" in shown
    assert "Counts unavailable (read model unavailable: connection refused)" in shown
    press(actions, "y")
    assert gateway.calls == [("retry_failed",)]


def test_esc_cancels_a_confirmation(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.confirm_replay()
    press(actions, "esc")
    assert actions.overlay is None and gateway.calls == []


# -- job detail --------------------------------------------------------------------------------


def scroll_to(actions: ActionOverlays, needle: str) -> list[str]:
    for _ in range(30):
        lines = screen(actions)
        if any(needle in line for line in lines):
            return lines
        press(actions, "page down")
    pytest.fail(f"{needle!r} never appeared")


def test_detail_header_payload_and_last_error(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_detail(JOB_ID)
    shown = text(actions)
    assert f"Job {JOB_ID}" in shown
    assert "status    DEAD_LETTERED" in shown
    assert "attempts  2/2" in shown
    assert "priority  4" in shown
    assert "created   2026-11-27 15:00:00" in shown
    assert "worker    processor-1/ab12" in shown
    assert '"until_attempt": 3 ' in shown  # a whole number, not 3.0
    assert "R retry  C cancel  PgUp/PgDn scroll  Esc/q close" in shown
    scroll_to(actions, "Last error")
    assert "simulated failure (attempt 2)" in text(actions)


def test_detail_attempts_table_and_timeline_in_time_order(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_detail(JOB_ID)
    lines = scroll_to(actions, "job.dead_lettered")
    shown = "\n".join(lines)
    assert "2   FAILED     15:00:01.000  250ms" in shown
    order = [
        "job.created",
        "job.started",
        "job.retry_scheduled",
        "job.started",
        "job.dead_lettered",
    ]
    timeline = [line.split()[2] for line in lines if "| 15:00:" in line and "job." in line]
    assert timeline == order
    assert "attempt 1 failed: simulated failure" in shown and "next in 200ms" in shown
    assert "max attempts after 2 attempts" in shown


def test_r_and_c_in_detail_act_on_the_job_and_refresh(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_detail(JOB_ID)
    press(actions, "R")
    assert gateway.calls == [("retry", JOB_ID)]
    assert "retry: job 00000000 is now PENDING" in text(actions)
    press(actions, "C")
    assert gateway.calls[-1] == ("cancel", JOB_ID)
    assert read_model.detail_calls == 3  # opened, then refreshed after each action
    press(actions, "q")
    assert actions.overlay is None


def test_detail_of_an_unknown_job_says_so(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    other = str(uuid.uuid4())
    actions.open_detail(other)
    assert isinstance(actions.overlay, JobDetailDialog)
    assert f"job {other} not found" in text(actions)
    press(actions, "esc")
    assert actions.overlay is None


# -- web UIs and help --------------------------------------------------------------------------


def test_web_uis_without_a_browser_show_the_url_to_copy(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    opener = Opener(works=False)
    copied: list[str] = []
    actions = make(base, gateway, read_model, opener, copied)
    actions.open_web_uis()
    shown = text(actions)
    assert "> gateway API docs     http://127.0.0.1:8080/docs" in shown
    assert "  RabbitMQ management  http://127.0.0.1:15672/" in shown
    press(actions, "down")
    assert "> RabbitMQ management" in text(actions)
    press(actions, "enter")
    assert opener.opened == ["http://127.0.0.1:15672/"]
    assert "no browser here; open this URL yourself: http://127.0.0.1:15672/" in text(actions)
    press(actions, "c")
    assert copied == ["http://127.0.0.1:15672/"]
    assert "copied (with xclip)" in text(actions)
    press(actions, "esc")
    assert actions.overlay is None


def test_web_uis_with_a_browser_open_the_chosen_one(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    opener = Opener(works=True)
    actions = make(base, gateway, read_model, opener)
    actions.open_web_uis()
    press(actions, "enter")
    assert opener.opened == ["http://127.0.0.1:8080/docs"]
    assert "opened in your browser: http://127.0.0.1:8080/docs" in text(actions)


def test_help_lists_every_key_and_closes_with_esc(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_help()
    seen = text(actions)
    press(actions, "page down", "page down")
    seen += text(actions)
    for key in ("N", "Enter", "C", "R", "A", "D", "U", "?", "Ctrl+Q", "Esc"):
        assert f"| {key} " in seen or f"  {key} " in seen, key
    assert "replay the dead-letter queue" in seen
    press(actions, "esc")
    assert actions.overlay is None


def test_keys_reach_the_screen_below_only_when_nothing_is_open(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    press(actions, "j")
    actions.open_help()
    press(actions, "k")
    assert base.keys == ["j"]


class DeferredRunner:
    """Holds calls until `finish()`, like a slow network call on a worker thread."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(
        self, work: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[str], None]
    ) -> None:
        self.pending.append(lambda: run_inline(work, done, failed))

    def finish(self) -> None:
        calls, self.pending = self.pending, []
        for call in calls:
            call()


def test_a_slow_submit_shows_progress_and_enter_twice_sends_once(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    runner = DeferredRunner()
    actions.runner = runner
    actions.open_new_job()
    type_into(form_of(actions).count, "3")
    press(actions, "enter", "enter")

    assert "submitting 3 jobs..." in text(actions)
    assert len(runner.pending) == 1
    runner.finish()
    assert gateway.calls == [("submit", "sleep", {"seconds": 1}, 3, 0)]
    assert "submitted 3 jobs (sleep)" in screen(actions)[-1]


def test_tab_and_shift_tab_move_between_fields(
    base: Base, gateway: FakeGateway, read_model: FakeReadModel
) -> None:
    actions = make(base, gateway, read_model)
    actions.open_new_job()
    form = form_of(actions)
    press(actions, "tab", "7")  # the form opens on the payload; tab -> count
    press(actions, "tab", "5")  # -> priority
    press(actions, "shift tab", "2")  # back to count
    assert (form.count.edit_text, form.priority.edit_text) == ("172", "05")
