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


def test_postgres_restart_pauses_then_catches_up(stack: Stack) -> None:
    restart_mid_stream(
        stack, "postgres", ["gateway", "processor-1", "read_model"], refuses_submissions=True
    )
