from __future__ import annotations

import math
from pathlib import Path

import pytest

from tools.bench import cli, ours


def test_defaults_cover_the_three_scales_both_modes_and_the_baselines() -> None:
    options = cli.parse_args([])
    assert options.jobs == (1000, 10_000, 100_000)
    assert options.modes == ("batch", "single")
    assert options.celery and options.raw
    assert options.stored == 1_000_000
    assert (options.rate, options.rate_window_ms) == (500.0, 10.0)  # single, then batched
    assert cli.repeats_for(options, 1_000) == 5
    assert cli.repeats_for(options, 10_000) == 3
    assert cli.repeats_for(options, 100_000) == 1


def test_repeats_are_given_for_all_scales_or_one_per_scale() -> None:
    options = cli.parse_args(["--jobs", "1000,10000", "--repeats", "3,1"])
    assert [cli.repeats_for(options, n) for n in options.jobs] == [3, 1]
    options = cli.parse_args(["--jobs", "1000,10000", "--repeats", "2"])
    assert [cli.repeats_for(options, n) for n in options.jobs] == [2, 2]


def test_quick_is_small_but_keeps_an_explicit_job_count() -> None:
    quick = cli.parse_args(["--quick"])
    assert quick.jobs == (500,) and quick.repeats == (1,) and quick.stored == 0
    assert cli.parse_args(["--quick", "--jobs", "200"]).jobs == (200,)


def test_skip_scale_and_skip_celery() -> None:
    options = cli.parse_args(["--skip-scale", "--skip-celery", "--json", "out.json"])
    assert options.stored == 0 and not options.celery
    assert options.json_path == Path("out.json")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--jobs", "10,abc"], "integers"),
        (["--jobs", "0"], "positive"),
        (["--modes", "batch,bulk"], "--modes"),
        (["--processors", "0"], "--processors"),
        (["--repeats", "0"], "positive"),
        (["--jobs", "10,20,30", "--repeats", "3,1"], "--repeats"),
        (["--rate-window-ms", "-5"], "--rate-window-ms"),
    ],
)
def test_bad_options_fail_naming_the_option(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert named in capsys.readouterr().err


def test_missing_figures_become_json_null() -> None:
    assert cli._json_safe({"a": [math.nan, 1.0], "b": {"c": math.nan}}) == {
        "a": [None, 1.0],
        "b": {"c": None},
    }


def test_a_failed_run_is_recorded_and_does_not_stop_the_others() -> None:
    def stuck() -> dict[str, object]:
        raise ours.BenchError("batch 1000: only 10 jobs terminal after 140 s")

    assert cli._recorded("batch", stuck) == {
        "error": "batch 1000: only 10 jobs terminal after 140 s"
    }


def test_a_saved_run_renders_again_from_its_json(tmp_path: Path) -> None:
    saved = tmp_path / "bench.json"
    saved.write_text(
        '{"scales": [], "queries": [{"stored": 1000000, "stats": {"p50_ms": 1, "p95_ms": 2,'
        ' "p99_ms": 3, "samples": 10}, "job_page": {"p50_ms": 5, "p95_ms": null, "p99_ms": 30,'
        ' "samples": 10}, "job_detail": {"p50_ms": 1, "p95_ms": 1, "p99_ms": 1, "samples": 1}}]}'
    )
    text = cli.render_saved(saved)
    assert "1,000,000" in text
    assert "NOT met" in text  # the page p99 of 30 ms misses the 20 ms target
