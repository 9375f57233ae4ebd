"""PostgreSQL stopped for 10 s mid-stream (fast shutdown), then a new server on the same port
with the same data directory: the gateway refuses submissions and the services that need it
report not-ready meanwhile, then the pipeline catches up, no accepted job lost and none counted
twice."""

from __future__ import annotations

import pytest

from tests.faults.stack import Stack
from tests.faults.store_outage import restart_mid_stream

pytestmark = [pytest.mark.integration]

RESTARTABLE_BACKENDS = True


# Known bug, kept visible. A submit whose commit is cut off after its confirmed publish leaves
# job.created events of jobs PostgreSQL never got; the processor drops their work messages, but
# nothing retracts the events, so Redis and GetStats keep them as PENDING. It strikes when the
# stop lands inside a submit (most runs, not all), so the marker is not strict. The fix is a
# transactional outbox in the gateway.
@pytest.mark.xfail(
    strict=False,
    reason="bug 5 (tests/faults/README.md): job.created of a submit whose commit was cut off "
    "is never retracted",
)
def test_postgres_restart_pauses_then_catches_up(stack: Stack) -> None:
    restart_mid_stream(
        stack, "postgres", ["gateway", "processor-1", "read_model"], refuses_submissions=True
    )
