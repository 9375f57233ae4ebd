"""PostgreSQL unresponsive for 10 s mid-stream: the services that need it report not-ready, then
the pipeline catches up, no accepted job lost and none counted twice."""

from __future__ import annotations

import pytest

from tests.faults.stack import Stack
from tests.faults.store_outage import freeze_mid_stream

pytestmark = [pytest.mark.integration]


def test_postgres_outage_pauses_then_catches_up(stack: Stack) -> None:
    freeze_mid_stream(stack, stack.postgres, ["gateway", "processor-1", "read_model"])
