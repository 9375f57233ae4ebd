from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tools.bench import cpu

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, ppid: int, name: str, ticks: tuple[int, int, int, int]) -> str:
    utime, stime, cutime, cstime = ticks
    rest = f"S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0"
    return f"{pid} ({name}) {rest}\n"


def test_a_name_with_spaces_and_parentheses_is_parsed() -> None:
    pid, ppid, seconds = cpu.parse_stat(_stat(42, 7, "odd) name (x", (TICKS, TICKS, 0, TICKS)))
    assert (pid, ppid) == (42, 7)
    assert seconds == pytest.approx(3.0)


def test_a_tree_counts_the_root_its_descendants_and_nothing_else(tmp_path: Path) -> None:
    for pid, ppid, ticks in [(10, 1, TICKS), (11, 10, TICKS), (12, 11, TICKS), (20, 1, 5 * TICKS)]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(_stat(pid, ppid, "p", (ticks, 0, 0, 0)))
    (tmp_path / "self").mkdir()  # non-numeric entries are not processes
    seconds = cpu.cpu_seconds({"server": 10, "other": 20, "gone": 99}, tmp_path)
    assert seconds == pytest.approx({"server": 3.0, "other": 5.0, "gone": 0.0})


def test_this_process_spends_cpu_between_two_readings() -> None:
    roots = {"me": os.getpid()}
    before = cpu.cpu_seconds(roots)
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    spent = cpu.delta(before, cpu.cpu_seconds(roots))
    assert spent["me"] >= 0.1
