from __future__ import annotations

import math
from typing import Any

from tools.bench import report


def _q(p50: float, p99: float) -> dict[str, float]:
    return {"p50_ms": p50, "p95_ms": (p50 + p99) / 2, "p99_ms": p99, "samples": 100.0}


def _ours(e2e: float, cpu_total: float) -> dict[str, Any]:
    return {
        "submit_rate": e2e * 2,
        "end_to_end_rate": e2e,
        "latency": _q(20, 80),
        "stats_freshness": _q(30, 120),
        "detail_freshness": _q(40, 200),
        "cpu_per_1000": {"gateway": cpu_total / 2, "processors": cpu_total / 2},
        "failed_jobs": 0,
    }


def _scale(jobs: int, e2e: float, cpu_total: float) -> dict[str, Any]:
    baseline = {"submit_rate": 2000.0, "end_to_end_rate": 1000.0, "cpu_per_1000": {"rabbitmq": 1}}
    return {
        "jobs": jobs,
        "processors": 2,
        "repeats": 3,
        "runs": {
            "batch": _ours(e2e, cpu_total),
            "single": _ours(e2e / 2, cpu_total),
            report.CELERY_DEFAULT: baseline,
            report.CELERY_CONFIRM: {**baseline, "end_to_end_rate": 500.0},
            report.RAW: {**baseline, "end_to_end_rate": 10_000.0},
        },
    }


def _results() -> dict[str, Any]:
    return {
        "machine": {"cpu": "Test CPU", "cores": 2},
        "scales": [_scale(1000, 2600.0, 10.0), _scale(100_000, 3000.0, 11.0)],
        "rate": {
            "offered_per_s": 500.0,
            "jobs": 10_000,
            "latency": _q(20, 90),
            "stats_freshness": _q(30, 300),
            "detail_freshness": _q(30, 100),
        },
        "rate_batched": {
            "offered_per_s": 500.0,
            "window_ms": 10.0,
            "jobs": 10_000,
            "latency": _q(25, 120),
            "stats_freshness": _q(30, 200),
            "detail_freshness": _q(30, 100),
        },
        "queries": [
            {"stored": 5000, "stats": _q(1, 2), "job_page": _q(2, 4), "job_detail": _q(3, 5)},
            {"stored": 1_000_000, "stats": _q(1, 3), "job_page": _q(5, 25), "job_detail": _q(3, 6)},
        ],
    }


def test_the_median_over_repeats_is_taken_per_figure() -> None:
    repeats = [{"a": 1.0, "b": {"c": 10}}, {"a": 3.0, "b": {"c": 30}}, {"a": 2.0, "b": {"c": 20}}]
    assert report.median_tree(repeats) == {"a": 2.0, "b": {"c": 20.0}}
    assert report.median_tree([{"x": math.nan}, {"x": 4.0}]) == {"x": 4.0}


def test_targets_compare_each_figure_with_its_goal() -> None:
    met = {t["name"]: t["met"] for t in report.targets(_results())}
    assert met["end-to-end (batch, largest N measured)"] is True  # 3000 >= 2500
    assert met["end-to-end vs celery confirm_publish"] is True  # 6x
    assert met["end-to-end vs celery default"] is True  # 3x
    assert met["submit->terminal p99 at offered load, single submits"] is True  # 90 < 100
    assert met["freshness stats p99 at offered load, single submits"] is False  # 300 >= 250
    assert met["submit->terminal p99 at offered load, batched every 10 ms"] is False  # 120
    assert met["freshness stats p99 at offered load, batched every 10 ms"] is True  # 200
    assert met["per-job CPU cost growth across N"] is True  # 10 -> 11: 10 %
    assert met["filtered job page p99 at 1M stored"] is False  # 25 >= 20
    assert met["stats p99 at 1M stored"] is True


def test_unmeasured_targets_are_reported_as_such() -> None:
    results = _results()
    results["scales"] = results["scales"][:1]
    results["queries"] = results["queries"][:1]
    del results["rate"], results["rate_batched"]
    met = {t["name"]: t["met"] for t in report.targets(results)}
    assert met["per-job CPU cost growth across N"] is None  # one scale: nothing to compare
    assert met["filtered job page p99 at 1M stored"] is None
    assert met["submit->terminal p99 at offered load, single submits"] is None
    assert not [name for name in met if "batched" in name]  # that run is optional


def test_the_table_has_a_row_per_figure_and_ratios_to_each_baseline() -> None:
    text = report.render(_results())
    for needle in (
        "N = 1,000 jobs",
        "N = 100,000 jobs",
        "submit jobs/s",
        "end-to-end jobs/s",
        "e2e ratio to celery default",
        "e2e ratio to celery confirm_publish",
        "e2e ratio to raw amqp",
        "submit->terminal p50/p95/p99 ms",
        "freshness stats p50/p99 ms",
        "freshness detail p50/p99 ms",
        "CPU s/1000 jobs gateway",
        "CPU s/1000 jobs total",
        "How cost grows with work",
        "Offered load 500 jobs/s for 10,000 jobs (open loop, single submits)",
        "Offered load 500 jobs/s for 10,000 jobs (open loop, batched every 10 ms)",
        "Read-model query latency",
        "1,000,000",
        "Targets",
        "NOT met",
    ):
        assert needle in text, needle
    ratio_rows = [line for line in text.splitlines() if "ratio to celery confirm" in line]
    assert "5.20x" in ratio_rows[0]  # batch at N=1,000: 2600 / 500
    assert "6.00x" in ratio_rows[1]  # batch at N=100,000: 3000 / 500


def test_a_failed_run_shows_as_missing_figures_and_its_error() -> None:
    results = _results()
    results["scales"][1]["runs"]["single"] = {"error": "single 100000: only 5 jobs terminal"}
    text = report.render(results)
    assert "single: single 100000: only 5 jobs terminal" in text
    e2e_rows = [line for line in text.splitlines() if line.startswith("end-to-end jobs/s")]
    assert e2e_rows[1].split()[3] == "-"  # batch, then the failed single run
    total_rows = [line for line in text.splitlines() if line.startswith("CPU s/1000 jobs total")]
    assert total_rows[1].split()[5] == "-"  # no CPU figure for a run that did not happen


def test_targets_use_the_largest_scale_where_batch_succeeded() -> None:
    results = _results()
    results["scales"][1]["runs"]["batch"] = {"error": "UNAVAILABLE: a backing service is down"}
    checks = {t["name"]: t for t in report.targets(results)}
    assert checks["end-to-end (batch, largest N measured)"]["measured"] == 2600.0
    assert checks["per-job CPU cost growth across N"]["met"] is None  # one scale left


def test_the_job_records_rate_is_shown_for_ours_only() -> None:
    results = _results()
    results["scales"][0]["runs"]["batch"]["records_rate"] = 4321.0
    row = next(
        line for line in report.render(results).splitlines() if line.startswith("terminal in job")
    )
    assert "4,321" in row


def test_the_offered_load_block_names_refused_submits_or_the_runs_failure() -> None:
    results = _results()
    results["rate"] = {
        "offered_per_s": 500.0,
        "jobs": 5000,
        "latency": _q(40.0, 90.0),
        "stats_freshness": _q(60.0, 200.0),
        "detail_freshness": _q(70.0, 210.0),
        "refused_submits": 12,
    }
    assert "; 12 jobs refused or past the deadline" in report.render(results)
    results["rate"] = {"error": "DEADLINE_EXCEEDED: Deadline Exceeded"}
    table = report.render(results)
    assert "Offered load (single submits): failed (DEADLINE_EXCEEDED: Deadline Exceeded)" in table
    assert "p99 at offered load" in table  # the target rows stay, as not measured
