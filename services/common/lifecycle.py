"""Process lifecycle shared by the services: shutdown on SIGTERM/SIGINT, capped backoff."""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator


def shutdown_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the main loop finishes its work and exits."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def backoff(initial: float = 0.2, cap: float = 10.0, factor: float = 2.0) -> Iterator[float]:
    """Reconnect delays: exponential, capped, with full jitter so replicas do not stampede."""
    delay = initial
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(cap, delay * factor)
