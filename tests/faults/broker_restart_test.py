"""RabbitMQ restarted mid-stream, the whole node: stopped (`rabbitmqctl shutdown`), 10 s down, a
new broker process on the same ports, node name and data directory. The gateway answers
UNAVAILABLE / 503 while the broker is away, accepts again once it is back, the durable queues
and their persistent messages survive, and no job it accepted is lost or counted twice."""

from __future__ import annotations

import pytest

from tests.faults.stack import Stack
from tests.faults.store_outage import restart_mid_stream

pytestmark = [pytest.mark.integration]

RESTARTABLE_BACKENDS = True


def test_broker_restart_mid_stream_loses_no_accepted_job(stack: Stack) -> None:
    restart_mid_stream(stack, "rabbitmq", ["gateway", "processor-1"], refuses_submissions=True)
