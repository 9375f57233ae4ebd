"""The Celery side of the comparison: one no-op task, acks_late, no result backend.

The worker is started as `celery -A tools.bench.celery_app worker` and the publisher imports
`make_app`; both read the broker URL from BENCH_CELERY_BROKER.
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]  # benchmark-only, no stubs

QUEUE = "bench.celery"
TASK = "bench.noop"


def make_app(broker_url: str, *, confirm_publish: bool = False) -> Celery:
    app = Celery("bench", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True} if confirm_publish else {},
    )

    app.task(name=TASK)(noop)
    return app


def noop() -> None:
    """Does nothing, like the observatory's "noop" job type."""


# The worker's app (imported by `celery -A`); publishers build their own with make_app.
app = make_app(os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
