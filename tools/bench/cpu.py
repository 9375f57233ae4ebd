"""CPU time of process trees, from /proc (Linux): what each component costs per job."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int, float]:
    """(pid, ppid, seconds) from a /proc/<pid>/stat line: utime+stime+cutime+cstime.

    The children's times count the descendants that already exited and were reaped, so summing
    this over the live processes of a tree counts every process once, dead or alive.
    """
    # The command name is in parentheses and may itself contain spaces or parentheses.
    pid = int(text[: text.index(" ")])
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return pid, int(fields[1]), ticks / _TICKS_PER_SECOND


def _snapshot(proc: Path) -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds) of every process readable now."""
    table: dict[int, tuple[int, float]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pid, ppid, seconds = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
        table[pid] = (ppid, seconds)
    return table


def tree_seconds(table: Mapping[int, tuple[int, float]], root: int) -> float:
    """CPU seconds of `root` and all its live descendants in a snapshot."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][1]
            stack.extend(children.get(pid, ()))
    return total


def cpu_seconds(roots: Mapping[str, int], proc: Path = Path("/proc")) -> dict[str, float]:
    """name -> CPU seconds so far of the process tree rooted at that pid."""
    if not roots:
        return {}  # nothing to read: skip the scan of every process
    table = _snapshot(proc)
    return {name: tree_seconds(table, pid) for name, pid in roots.items()}


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds spent between two `cpu_seconds` readings, per name present in both."""
    return {name: after[name] - before[name] for name in after if name in before}
