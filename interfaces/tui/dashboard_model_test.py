"""The dashboard's rules: merging live changes, filters, paging, selection and formatting."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.dashboard_fakes import NOW, alert, job, stats
from interfaces.tui.dashboard_model import (
    STATUS_CYCLE,
    AlertsSnapshot,
    AlertUpdate,
    Connected,
    DashboardModel,
    JobQuery,
    JobsPage,
    JobUpdate,
    Reconnecting,
    StatsUpdate,
    collapse_retry_queues,
    format_duration,
    format_quantiles,
    sparkline,
    text_matches,
    throughput_of,
)

COMPLETED = job_pb2.JOB_STATUS_COMPLETED
FAILED = job_pb2.JOB_STATUS_FAILED
RUNNING = job_pb2.JOB_STATUS_RUNNING


def model_with(*jobs: job_pb2.Job, token: str = "", page_size: int = 5) -> DashboardModel:
    model = DashboardModel(clock=lambda: NOW)
    model.set_page_size(page_size)
    model.apply(JobsPage(JobQuery(), jobs, token))
    return model


def ids(jobs: list[job_pb2.Job]) -> list[str]:
    return [j.id[:8] for j in jobs]


def test_new_job_appears_on_top_and_a_change_updates_its_row_in_place() -> None:
    model = model_with(job(2, RUNNING), job(1))

    model.apply(JobUpdate(job(3, RUNNING)))
    model.apply(JobUpdate(job(2, COMPLETED, updated_s=5)))

    rows = model.page_rows()
    assert ids(rows) == ["00000003", "00000002", "00000001"]
    assert rows[1].status == COMPLETED


def test_an_older_copy_of_a_job_does_not_overwrite_a_newer_one() -> None:
    model = model_with(job(1, COMPLETED, updated_s=10))

    model.apply(JobUpdate(job(1, RUNNING, updated_s=2)))  # arrived late

    assert model.page_rows()[0].status == COMPLETED


def test_status_filter_drops_jobs_that_leave_it_and_ignores_others() -> None:
    model = DashboardModel()
    query = model.cycle_status()  # all -> pending
    query = model.cycle_status()  # -> running
    assert query == JobQuery(status=RUNNING)
    model.apply(JobsPage(query, (job(1, RUNNING),), ""))

    model.apply(JobUpdate(job(1, COMPLETED, updated_s=1)))
    model.apply(JobUpdate(job(2, COMPLETED)))

    assert model.page_rows() == []


def test_a_page_for_a_filter_no_longer_selected_is_ignored() -> None:
    model = DashboardModel()
    model.cycle_status()

    model.apply(JobsPage(JobQuery(), (job(1),), ""))

    assert model.page_rows() == []
    assert model.loading


def test_status_cycle_goes_through_every_status_and_back_to_all() -> None:
    model = DashboardModel()
    seen = [model.cycle_status().status for _ in STATUS_CYCLE]

    assert seen[-1] is None
    assert set(seen) == set(STATUS_CYCLE)


def test_type_cycle_uses_the_types_in_stats() -> None:
    model = DashboardModel()
    model.apply(StatsUpdate(stats(types=("email.send", "report.build"))))

    assert [model.cycle_type().job_type for _ in range(3)] == ["email.send", "report.build", None]


def test_text_filter_matches_id_prefix_type_status_and_error() -> None:
    failing = job(0xABC, FAILED, job_type="report.build", last_error="Timeout talking to SMTP")

    for text in ("00000abc", "report", "failed", "smtp", ""):
        assert text_matches(failing, text), text
    assert not text_matches(failing, "abc")  # not a prefix of the id
    assert not text_matches(failing, "email")


def test_paging_moves_through_loaded_jobs_then_asks_for_the_next_server_page() -> None:
    model = model_with(*(job(n) for n in range(12, 0, -1)), token="tok-2", page_size=5)  # noqa: S106

    assert model.next_page() is None
    assert ids(model.page_rows()) == [f"{n:08x}" for n in (7, 6, 5, 4, 3)]
    assert model.next_page() == "tok-2"  # rows 11-15: only 2 loaded
    model.apply(JobsPage(JobQuery(), tuple(job(n) for n in range(0, -3, -1)), "", append=True))

    assert model.page == 2
    assert len(model.page_rows()) == 5
    assert not model.has_next_page()
    model.prev_page()
    assert model.page == 1


def test_selection_stays_on_the_page_and_follows_the_keys() -> None:
    model = model_with(job(3), job(2), job(1), page_size=5)

    model.move_selection(1)
    assert model.selected_job() == job(2)
    model.move_selection(10)
    assert model.selected_job() == job(1)
    model.move_selection(-10)
    assert model.selected_job() == job(3)


def test_smaller_page_size_keeps_the_first_visible_job_on_screen() -> None:
    model = model_with(*(job(n) for n in range(20, 0, -1)), page_size=10)
    model.next_page()
    first = model.page_rows()[0]

    model.set_page_size(4)

    assert first in model.page_rows()


def test_alerts_show_firing_ones_most_severe_first_and_resolved_ones_go_away() -> None:
    model = DashboardModel()
    model.apply(
        AlertsSnapshot(
            (alert("Info", rm.ALERT_SEVERITY_INFO), alert("Warn", rm.ALERT_SEVERITY_WARNING))
        )
    )
    model.apply(AlertUpdate(alert("Crit")))
    assert [a.name for a in model.alerts()] == ["Crit", "Warn", "Info"]

    model.apply(AlertUpdate(alert("Crit", state=rm.ALERT_STATE_RESOLVED)))

    assert [a.name for a in model.alerts()] == ["Warn", "Info"]


def test_connection_state_marks_data_stale_only_after_it_was_live() -> None:
    model = DashboardModel()
    model.apply(Reconnecting("rm:1", 1, 0.5, "read model unavailable"))
    assert not model.stale  # nothing shown yet, so nothing is stale

    model.apply(Connected("rm:1"))
    model.apply(Reconnecting("rm:1", 2, 1.5, "read model unavailable"))

    assert model.stale
    assert "reconnecting (attempt 2, next try in 1.5s)" in model.connection.detail


def test_durations_read_in_ms_then_seconds_then_minutes() -> None:
    def ms(value: int) -> Duration:
        duration = Duration()
        duration.FromMilliseconds(value)
        return duration

    assert [format_duration(ms(v)) for v in (7, 999, 1250, 12_500, 125_000)] == [
        "7ms",
        "999ms",
        "1.25s",
        "12.5s",
        "2m05s",
    ]
    assert format_quantiles(rm.LatencyQuantiles()) == ("-", "-", "-")  # no samples


def test_sparkline_scales_to_the_peak_and_pads_to_its_width() -> None:
    line = sparkline([0, 1, 2, 4, 8], 8)

    assert len(line) == 8
    assert line[-1] == "█"
    assert line[3] == " "  # zero stays blank
    assert sparkline([0, 0], 3) == "   "


def test_throughput_rate_ignores_the_bucket_still_filling_up() -> None:
    series = throughput_of(stats(completed=(2, 4, 100)))

    assert series is not None
    assert series.rate_per_s == 3.0
    assert series.peak == 100


def test_a_fresh_first_page_after_a_reconnect_keeps_the_view_on_a_page_that_exists() -> None:
    model = model_with(*(job(n) for n in range(10, 0, -1)), token="more", page_size=5)  # noqa: S106
    model.next_page()
    model.next_page()
    model.apply(JobsPage(JobQuery(), tuple(job(n) for n in range(0, -10, -1)), "", append=True))
    assert model.page == 2

    model.apply(JobsPage(JobQuery(), tuple(job(n) for n in range(3, 0, -1)), ""))

    assert model.page == 0
    assert ids(model.page_rows()) == ["00000003", "00000002", "00000001"]


def test_retry_queues_are_summed_into_one_row() -> None:
    rows = collapse_retry_queues(
        [
            rm.Queue(name="jobs.work", depth=5),
            rm.Queue(name="jobs.retry.1000", depth=1, consumers=0),
            rm.Queue(name="jobs.retry.8000", depth=2, unacknowledged=1),
        ]
    )

    assert [(q.name, q.depth, q.unacknowledged) for q in rows] == [
        ("jobs.retry.*", 3, 1),
        ("jobs.work", 5, 0),
    ]
