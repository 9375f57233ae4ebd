"""Watching the system from outside during a fault: readiness probes sampled over time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from services.common import rabbitmq_management
from tools.testing.servers.net import http_status
from tools.testing.servers.rabbitmq import RabbitMQInfo


@dataclass
class ReadinessWatch:
    """Samples GET <url>/readyz of some services every `interval` s in a background thread.

    A probe that does not answer within `timeout` counts as not ready (None): a frozen
    dependency can make a readiness probe hang, which is itself the visible degradation.
    """

    urls: dict[str, str]  # service name -> base URL
    interval: float = 0.5
    timeout: float = 2.0
    samples: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> ReadinessWatch:
        for name, url in self.urls.items():
            self.samples[name] = []
            thread = threading.Thread(target=self._watch, args=(name, url), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + self.interval + 1)

    def _watch(self, name: str, url: str) -> None:
        while not self._stop.is_set():
            status = http_status(f"{url}/readyz", timeout=self.timeout)
            self.samples[name].append((time.monotonic(), status))
            self._stop.wait(self.interval)

    def statuses(self, name: str, start: float, end: float) -> list[int | None]:
        return [status for at, status in self.samples[name] if start <= at <= end]

    def not_ready_between(self, name: str, start: float, end: float) -> bool:
        return any(status != 200 for status in self.statuses(name, start, end))

    def ready_after(self, name: str, moment: float) -> bool:
        """True if the service's last sample after `moment` was 200 (it recovered)."""
        later = [status for at, status in self.samples[name] if at > moment]
        return bool(later) and later[-1] == 200

    def first_ready_after(self, name: str, moment: float) -> float | None:
        """When the service first answered 200 after `moment` (its recovery), if it did."""
        return next(
            (at for at, status in self.samples[name] if at > moment and status == 200), None
        )


def queue_backlog(broker: RabbitMQInfo, queue: str) -> int:
    """Messages in `queue`, ready or delivered and not yet acked (management API, 1 s stats)."""
    auth = (broker.username, broker.password)
    return rabbitmq_management.queue(broker.management_url, queue, auth=auth).messages
