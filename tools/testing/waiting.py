"""Bounded polling for tests: wait until something holds, or fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    *,
    what: str,
    until: Callable[[T], object] = bool,
    timeout: float = 30.0,
    interval: float = 0.2,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Calls `probe` until `until(result)` holds (by default: the result is truthy); returns it.

    Exceptions of the `ignoring` types count as "not yet" (e.g. connection refused while a
    server warms up). After `timeout` seconds: AssertionError naming `what` and the last result.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except ignoring as error:
            last = error
        else:
            if until(result):
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
