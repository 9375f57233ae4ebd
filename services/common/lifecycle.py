"""Process lifecycle shared by the services: shutdown on SIGTERM/SIGINT, capped backoff."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator, Mapping


def shutdown_event(also: Mapping[int, threading.Event] | None = None) -> threading.Event:
    """An event set by SIGTERM or SIGINT: the main loop finishes its work and exits. `also`:
    other signals and the events they set (see `set_by_signals`, which this calls)."""
    stop = threading.Event()
    set_by_signals({signal.SIGTERM: stop, signal.SIGINT: stop, **(also or {})})
    return stop


def set_by_signals(events: Mapping[int, threading.Event]) -> None:
    """Has each signal in `events` set its event. Call it once, from the main thread.

    The events are set by a watcher thread, not by Python signal handlers, for two reasons (one
    seen in CI: a gateway ignoring SIGTERM for 20 s):
    - A Python handler runs in the main thread between two bytecodes, possibly while that thread
      holds the event's own lock (entering or leaving `wait()`, in `clear()`); `set()` there
      would wait for itself forever.
    - A signal the kernel hands to another thread leaves a main thread blocked in `wait()`
      asleep, so a Python handler would not run until it woke.
    The C-level handler writes each signal's number to the wakeup pipe from whichever thread it
    interrupted; the watcher reads it there.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    for signum in events:
        # A Python-level handler is what installs the C-level one; the watcher does the work.
        signal.signal(signum, _noted)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in events:
                    events[signum].set()

    threading.Thread(target=watch, name="signals", daemon=True).start()


def _noted(_signum: int, _frame: object) -> None:
    """The Python-level handler: nothing (the wakeup pipe carries the signal to the watcher)."""


def backoff(initial: float = 0.2, cap: float = 10.0, factor: float = 2.0) -> Iterator[float]:
    """Reconnect delays: exponential, capped, with full jitter so replicas do not stampede."""
    delay = initial
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(cap, delay * factor)
