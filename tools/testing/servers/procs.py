"""Processes as seen in /proc: identity that survives PID reuse, trees, listeners, killing.

Servers fork helpers that leave our process group (Erlang's erl_child_setup calls setsid), so
"what we started" is tracked as a set of processes, not as a group or a name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

_PROC = Path("/proc")


@dataclass(frozen=True)
class _Stat:
    state: str
    ppid: int
    pgrp: int
    start_time: int


def _stat(pid: int) -> _Stat | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return _Stat(
        state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]), start_time=int(fields[19])
    )


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir(_PROC) if name.isdigit()]


@dataclass(frozen=True, order=True)
class ProcessId:
    """A process as (pid, start time): unlike a bare PID it never matches a later, reused PID."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        stat = _stat(pid)
        return None if stat is None else cls(pid, stat.start_time)

    def running(self) -> bool:
        """True while the process exists and is not a zombie."""
        stat = _stat(self.pid)
        return stat is not None and stat.start_time == self.start_time and stat.state not in "ZX"

    def exe_name(self) -> str:
        try:
            return Path(os.readlink(_PROC / str(self.pid) / "exe")).name
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        # The identity check and the kill are not atomic; the window is microseconds and a PID
        # is reused only after the whole PID space has wrapped.
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def descendants(roots: Iterable[ProcessId]) -> set[ProcessId]:
    """The running `roots` and every running process below them."""
    children: dict[int, list[int]] = {}
    stats: dict[int, _Stat] = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None:
            stats[pid] = stat
            children.setdefault(stat.ppid, []).append(pid)
    found: set[ProcessId] = set()
    queue = [root.pid for root in roots if root.running()]
    while queue:
        pid = queue.pop()
        stat = stats.get(pid)
        if stat is None or stat.state in "ZX":
            continue
        found.add(ProcessId(pid, stat.start_time))
        queue.extend(children.get(pid, []))
    return found


def group_members(pgid: int) -> set[ProcessId]:
    members = set()
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None and stat.pgrp == pgid and stat.state not in "ZX":
            members.add(ProcessId(pid, stat.start_time))
    return members


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def listening_on(port: int) -> set[ProcessId]:
    """The processes holding a listening TCP socket on `port` (any address)."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found: set[ProcessId] = set()
    if not inodes:
        return found
    for pid in _all_pids():
        try:
            fds = os.listdir(_PROC / str(pid) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(_PROC / str(pid) / "fd" / fd)
            except OSError:
                continue
            if target in inodes:
                process = ProcessId.of(pid)
                if process is not None:
                    found.add(process)
                break
    return found


def wait_gone(processes: Iterable[ProcessId], timeout: float) -> set[ProcessId]:
    """Waits up to `timeout` seconds for `processes` to exit; returns those still running."""
    remaining = set(processes)
    deadline = time.monotonic() + timeout
    while True:
        remaining = {p for p in remaining if p.running()}
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def kill_all(processes: Iterable[ProcessId]) -> None:
    for process in processes:
        process.signal(signal.SIGKILL)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Runs the block with SIGINT and SIGTERM held back: their Python handlers run after it.

    A handler that raises (SystemExit, KeyboardInterrupt) inside `subprocess.Popen` leaves the
    forked child running and unknown to anyone who could stop it. Only the main thread runs
    Python handlers and may swap them; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, FrameType | None]] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: caught.append((signum, frame)))
        for signum in _DEFERRED
    }
    try:
        yield
    finally:
        for deferred, handler in previous.items():
            signal.signal(deferred, handler)
        for signum, frame in caught:
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)  # the default action, now that it is restored
