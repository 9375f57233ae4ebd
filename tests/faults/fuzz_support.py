"""After fuzzing: bring every job the fuzzer got accepted to an end, so the consistency check
can run. Random specs can be long (`sleep` up to an hour, 100 attempts of a failing job): the
client's own lever, CancelJob, ends them, and that the system obeys it is part of the test."""

from __future__ import annotations

import grpc
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc

from services.common import postgres
from tests.faults.consistency import TERMINAL
from tests.faults.stack import Stack
from tools.testing.waiting import wait_for

SETTLE_S = 10.0  # let the short jobs finish on their own first


def unfinished(stack: Stack, job_ids: set[str]) -> set[str]:
    with postgres.connect(stack.postgres.info.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, status FROM jobs WHERE id = ANY(%s::uuid[])", (list(job_ids),)
        ).fetchall()
    return {job_id for job_id, status in rows if status not in TERMINAL}


def cancel_unfinished(stack: Stack, job_ids: set[str]) -> int:
    """Cancels the accepted jobs still running or waiting; returns how many it cancelled."""
    try:
        wait_for(
            lambda: unfinished(stack, job_ids),
            until=lambda left: not left,
            what="fuzzed jobs to finish",
            timeout=SETTLE_S,
        )
        return 0
    except AssertionError:
        pass
    left = unfinished(stack, job_ids)
    with grpc.insecure_channel(stack.gateway.info.grpc_target) as channel:
        stub = gateway_pb2_grpc.JobServiceStub(channel)
        for job_id in left:
            try:
                stub.CancelJob(gateway_pb2.CancelJobRequest(job_id=job_id), timeout=30)
            except grpc.RpcError as error:  # finished meanwhile
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    return len(left)
