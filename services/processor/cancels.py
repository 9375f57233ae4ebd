"""Cancel broadcasts: which jobs run in this process, and the control message naming one.

The gateway publishes a cancel request for a running job to topology.CONTROL_EXCHANGE (fanout)
as the job id in UTF-8 text (or in an `x-job-id` header); every processor hears it and the one
running the job sets that attempt's `cancelled` event. The lease renewal also sees
`cancel_requested`, so a lost broadcast only delays the stop by one renewal interval.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping


def cancelled_job_id(body: bytes, headers: Mapping[str, object] | None) -> str | None:
    """The job id a control message asks to cancel, or None if it names none."""
    raw = (headers or {}).get("x-job-id", body)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


class CancelRegistry:
    """The cancel signals of the jobs this process is handling (a job id may be handled twice at
    once, e.g. a duplicate message being re-delayed, hence a set per id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handling: dict[str, set[threading.Event]] = {}

    @contextlib.contextmanager
    def handling(self, job_id: str, cancelled: threading.Event) -> Iterator[None]:
        with self._lock:
            self._handling.setdefault(job_id, set()).add(cancelled)
        try:
            yield
        finally:
            with self._lock:
                signals = self._handling[job_id]
                signals.discard(cancelled)
                if not signals:
                    del self._handling[job_id]

    def cancel(self, job_id: str) -> bool:
        """Signals the job if it is handled here; True if it was."""
        with self._lock:
            signals = list(self._handling.get(job_id, ()))
        for cancelled in signals:
            cancelled.set()
        return bool(signals)
