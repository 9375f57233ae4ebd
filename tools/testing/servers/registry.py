"""Every server started by this process and not yet stopped.

It lets the pytest plugin ask which servers died, and stops leftovers when the interpreter
exits (a fixture that never reached teardown, a plain script that forgot `stop()`).
"""

from __future__ import annotations

import atexit
import contextlib
from typing import Protocol


class Stoppable(Protocol):
    @property
    def name(self) -> str: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...


_live: dict[int, Stoppable] = {}
_atexit_registered = False


def register(server: Stoppable) -> None:
    global _atexit_registered  # noqa: PLW0603 (one process-wide hook, installed on first use)
    if not _atexit_registered:
        atexit.register(stop_all)
        _atexit_registered = True
    _live[id(server)] = server


def unregister(server: Stoppable) -> None:
    _live.pop(id(server), None)


def live() -> list[Stoppable]:
    """Servers started and not yet stopped (whether or not their process still runs)."""
    return list(_live.values())


def crashed() -> list[Stoppable]:
    """Servers started, not stopped, whose process is gone."""
    return [server for server in live() if not server.alive()]


def stop_all() -> None:
    for server in live():
        # Best effort at exit: one server failing to stop must not keep the others running.
        with contextlib.suppress(Exception):
            server.stop()


def kill_all() -> None:
    """Like `stop_all`, but immediate: for when there is no time for graceful shutdowns."""
    for server in live():
        with contextlib.suppress(Exception):
            server.kill()
