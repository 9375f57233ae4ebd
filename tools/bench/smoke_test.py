"""The whole benchmark at toy size on the real stack, Celery and raw AMQP included: every row of
the table and every field of the JSON are there. No timing is asserted (shared machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.bench import cli, report

pytestmark = pytest.mark.integration


def test_a_quick_run_prints_every_row_and_writes_complete_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--jobs", "200", "--skip-scale", "--rate", "50", "--rate-seconds", "2"]
    assert cli.main([*argv, "--json", str(out), "--state-dir", str(tmp_path / "state")]) == 0

    table = capsys.readouterr().out
    for row in (
        "submit jobs/s",
        "end-to-end jobs/s",
        "e2e ratio to celery default",
        "e2e ratio to celery confirm_publish",
        "e2e ratio to raw amqp",
        "submit->terminal p50/p95/p99 ms",
        "freshness stats p50/p99 ms",
        "freshness detail p50/p99 ms",
        "CPU s/1000 jobs processors",
        "CPU s/1000 jobs celery_worker",
        "CPU s/1000 jobs total",
        "Offered load",
        "Read-model query latency",
        "Targets",
    ):
        assert row in table, row

    results = json.loads(out.read_text())
    assert {"machine", "commit", "options", "scales", "rate", "queries", "targets"} <= set(results)
    runs = results["scales"][0]["runs"]
    assert set(runs) == {"batch", "single", *report.BASELINES}
    for mode in ("batch", "single"):
        assert runs[mode]["failed_jobs"] == 0
        assert runs[mode]["end_to_end_rate"] > 0
        assert runs[mode]["latency"]["samples"] == 200
        for component in ("gateway", "processors", "metrics_engine", "read_model", "postgres"):
            assert runs[mode]["cpu_per_1000"][component] >= 0
    for baseline in report.BASELINES:
        assert runs[baseline]["end_to_end_rate"] > 0
    assert results["rate"]["latency"]["samples"] == results["rate"]["jobs"]
    assert {"stats", "job_page", "job_detail"} <= set(results["queries"][0])
    assert len(results["targets"]) == len(report.targets(results))


def _processes_under(directory: Path) -> list[str]:
    """Command lines of the processes started for a run in `directory` (named in their argv or
    running in it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if str(directory) in argv or cwd.startswith(str(directory)):
            found.append(argv)
    return found


def test_sigterm_stops_the_run_and_every_server_it_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    argv = ["--quick", "--skip-celery", "--skip-raw", "--rate", "0", "--state-dir", str(state)]
    entry = "import sys; from tools.bench.cli import main; sys.exit(main())"
    bench = subprocess.Popen(
        [sys.executable, "-c", entry, *argv],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 120
        while not (state / "gateway").exists():  # the servers are up, the services starting
            assert bench.poll() is None, "the benchmark ended before its stack was up"
            assert time.monotonic() < deadline, "the stack did not come up in 120 s"
            time.sleep(0.2)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=90) == 128 + signal.SIGTERM
    finally:
        bench.kill()
    assert _processes_under(state) == []
