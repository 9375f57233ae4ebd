"""An in-memory stand-in for JobService, for the front ends' unit tests (no servers)."""

from __future__ import annotations

from collections.abc import Sequence

from observatory.jobs.v1 import job_pb2

from services.common import ids
from services.gateway import validation
from services.gateway.service import ConflictError, NotFoundError, Submitted


class FakeJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, job_pb2.Job] = {}
        self.correlation_ids: list[str] = []
        self.fail_with: Exception | None = None  # raised by every call when set

    def submit(self, specs: Sequence[job_pb2.JobSpec], correlation_id: str) -> list[Submitted]:
        self._maybe_fail()
        self.correlation_ids.append(correlation_id)
        results = []
        for spec in specs:
            existing = [
                j for j in self.jobs.values() if spec.idempotency_key == j.idempotency_key != ""
            ]
            if existing:
                job, duplicate = existing[0], True
            else:
                job = job_pb2.Job(
                    id=ids.new_job_id(),
                    type=spec.type,
                    payload=spec.payload,
                    priority=spec.priority,
                    status=job_pb2.JOB_STATUS_PENDING,
                    idempotency_key=spec.idempotency_key,
                    correlation_id=correlation_id,
                )
                self.jobs[job.id], duplicate = job, False
            results.append(Submitted(job.id, ids.event_id(job.id, 1), job.status, duplicate))
        return results

    def get(self, job_id: str) -> job_pb2.Job:
        self._maybe_fail()
        job_id = validation.parse_job_id(job_id)
        if job_id not in self.jobs:
            raise NotFoundError(f"job {job_id} not found")
        return self.jobs[job_id]

    def cancel(self, job_id: str, reason: str) -> tuple[job_pb2.Job, str]:
        job = self.get(job_id)
        if job.status != job_pb2.JOB_STATUS_PENDING:
            raise ConflictError(f"job {job_id} is {job_pb2.JobStatus.Name(job.status)}")
        job.status = job_pb2.JOB_STATUS_CANCELLED
        return job, ids.event_id(job.id, 2)

    def retry(self, job_id: str) -> tuple[job_pb2.Job, str]:
        job = self.get(job_id)
        if job.status != job_pb2.JOB_STATUS_CANCELLED:
            raise ConflictError(f"job {job_id} is {job_pb2.JobStatus.Name(job.status)}")
        job.status = job_pb2.JOB_STATUS_PENDING
        return job, ids.event_id(job.id, 3)

    def retry_failed(self) -> int:
        self._maybe_fail()
        return 0

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
