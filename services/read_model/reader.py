"""The read model's queries, one method per RPC; gRPC and HTTP are two faces over this."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from services.aggregates.store import Aggregates
from services.common import postgres
from services.common.pg_pool import ConnectionPool
from services.jobstore import store
from services.read_model import alerts, event_query, job_query, queues
from services.read_model.errors import InvalidArgumentError, NotFoundError

QUERY_SECONDS = 10.0  # a read query waits at most this long, then fails (UNAVAILABLE)
T = TypeVar("T")


class ReadModel:
    def __init__(
        self,
        postgres_dsn: str,
        events: event_query.Events,
        aggregates: Aggregates,
        rabbitmq_management_url: str,
    ) -> None:
        self._pool = ConnectionPool(
            lambda: postgres.connect(
                postgres_dsn,
                application_name="read-model",
                timeout=5,
                statement_timeout=QUERY_SECONDS,
            ),
            deadline_s=QUERY_SECONDS + 1,  # a frozen server enforces no statement timeout
        )
        self.events = events
        self.aggregates = aggregates
        self._management_url = rabbitmq_management_url

    def in_postgres(self, work: Callable[[store.Conn], T]) -> T:
        """`work` on a pooled connection (see pg_pool: opening one per call cost more CPU than
        the queries), committed."""
        return self._pool.run(work)

    def close(self) -> None:
        self._pool.close()

    def get_stats(self, _request: rm.GetStatsRequest) -> rm.GetStatsResponse:
        return rm.GetStatsResponse(stats=self.aggregates.stats())

    def list_jobs(self, request: rm.ListJobsRequest) -> rm.ListJobsResponse:
        query = job_query.build(request)
        return self.in_postgres(lambda conn: job_query.run(conn, query))

    def job(self, job_id: str) -> job_pb2.Job | None:
        return self.in_postgres(lambda conn: store.get_job(conn, job_id))

    def get_job_detail(self, request: rm.GetJobDetailRequest) -> rm.GetJobDetailResponse:
        try:
            job_id = str(uuid.UUID(request.job_id))
        except ValueError:
            raise InvalidArgumentError(
                "job_id", f"expected a UUID, got {request.job_id!r}"
            ) from None
        job, attempts = self.in_postgres(
            lambda conn: (store.get_job(conn, job_id), store.get_attempts(conn, job_id))
        )
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        timeline = event_query.timeline(self.events, job_id)
        return rm.GetJobDetailResponse(job=job, attempts=attempts, events=timeline)

    def list_events(self, request: rm.ListEventsRequest) -> rm.ListEventsResponse:
        return event_query.run(self.events, event_query.build(request))

    def list_queues(self, _request: rm.ListQueuesRequest) -> rm.ListQueuesResponse:
        return queues.list_queues(self._management_url)

    def list_alerts(self, request: rm.ListAlertsRequest) -> rm.ListAlertsResponse:
        return self.in_postgres(lambda conn: alerts.list_alerts(conn, request))

    def receive_alerts(self, body: Any) -> list[alerts.AlertRow]:
        rows = alerts.parse_webhook(body)
        self.in_postgres(lambda conn: alerts.upsert(conn, rows))
        return rows
