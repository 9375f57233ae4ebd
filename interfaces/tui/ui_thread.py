"""Runs callables on urwid's main loop from other threads (launcher progress, live data).

urwid is not thread-safe: a worker thread queues a callable and writes one byte to a pipe the
main loop watches; the loop then runs every queued callable and redraws.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable

import urwid


class UiDispatcher:
    def __init__(self, loop: urwid.MainLoop) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._loop = loop
        self._owner = threading.get_ident()
        self._fd: int | None = loop.watch_pipe(self._drain)

    def call_soon(self, call: Callable[[], None]) -> None:
        """Thread-safe: `call` runs on the main loop shortly (at once when called from it)."""
        if threading.get_ident() == self._owner:
            call()
            return
        self._calls.put(call)
        fd = self._fd
        if fd is not None:
            with contextlib.suppress(OSError):  # closed meanwhile: the loop is gone
                os.write(fd, b"!")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._loop.remove_watch_pipe(fd)

    def _drain(self, _data: bytes) -> bool:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return True
            call()
