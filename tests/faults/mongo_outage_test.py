"""The MongoDB-wire server unresponsive for 10 s mid-stream: the services that need it report
not-ready, then the pipeline catches up, no accepted job lost and none counted twice."""

from __future__ import annotations

import pytest

from tests.faults.stack import Stack
from tests.faults.store_outage import freeze_mid_stream

pytestmark = [pytest.mark.integration]


def test_mongo_outage_pauses_then_catches_up(stack: Stack) -> None:
    freeze_mid_stream(stack, stack.mongo, ["metrics_engine", "read_model"])
