"""Measures what random and time-ordered ids cost the stores that index them (a measurement, not a
test): the MongoDB-wire event store's CPU per event and PostgreSQL's CPU per job, as the stores
fill, each on a fresh throwaway server with its data on disk (as the local stack runs them).

    python -m tools.bench.measure_ids [--jobs 100000] [--repeats 1]

"v4" is how ids were made before: random job ids, name-based (v5) event ids. "v7" is how they
are made now (services/common/ids.py): v7 job ids, and event ids that start with their job's
time. Per scheme, the event store takes each job's three events (created, started, completed)
in transactions of 300 events, as the metrics engine writes them; PostgreSQL takes the jobs in
inserts of 300, as the gateway writes them, each batch then marked running and completed by id,
as the processor does. The schemes alternate, so both see the same machine.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from observatory.jobs.v1 import job_pb2

from services.common import ids, mongo
from services.jobstore import store
from services.jobstore.testing import migrated_connection
from services.metrics_engine.documents import COLLECTION, DATABASE
from services.metrics_engine.sample_events import completed_job_batches
from services.metrics_engine.sink import EventSink
from tools.bench import cpu
from tools.testing.servers import MongoServer, PostgresServer

BATCH = 300  # events per event-store transaction; jobs per gateway insert
SCHEMES: dict[str, Callable[[], str]] = {
    "v4": lambda: str(uuid.uuid4()),
    "v7": ids.new_job_id,
}


def event_store_us_per_event(new_id: Callable[[], str], jobs: int) -> float:
    start = datetime.now(UTC) - timedelta(seconds=jobs // 1000)
    with tempfile.TemporaryDirectory() as state_dir:
        server = MongoServer(state_dir, persist=True)
        info = server.start()
        try:
            client = mongo.connect(info.url)
            # Only the event store is written: no aggregates.
            sink = EventSink(client[DATABASE][COLLECTION], aggregates=None)  # type: ignore[arg-type]
            sink.ensure_indexes()
            before = cpu.cpu_seconds({"mongo": server.pid})
            for batch in completed_job_batches(jobs, start, BATCH, new_id):
                sink.store_documents(batch)
            seconds = cpu.delta(before, cpu.cpu_seconds({"mongo": server.pid}))["mongo"]
            client.close()
        finally:
            server.stop()
    return seconds * 1e6 / (3 * jobs)


def postgres_us_per_job(new_id: Callable[[], str], jobs: int) -> float:
    created = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as state_dir:
        server = PostgresServer(state_dir)
        info = server.start()
        try:
            with migrated_connection(info.dsn) as conn:
                before = cpu.cpu_seconds({"postgres": server.pid})
                for first in range(0, jobs, BATCH):
                    batch = [_job(new_id(), created) for _ in range(min(BATCH, jobs - first))]
                    store.insert_jobs(conn, batch)
                    conn.commit()
                    batch_ids = [job.id for job in batch]
                    for status in ("running", "completed"):
                        conn.execute(
                            "UPDATE jobs SET status = %s, updated_at = now() WHERE id = ANY(%s)",
                            (status, batch_ids),
                        )
                        conn.commit()
                seconds = cpu.delta(before, cpu.cpu_seconds({"postgres": server.pid}))["postgres"]
        finally:
            server.stop()
    return seconds * 1e6 / jobs


def _job(job_id: str, created: datetime) -> job_pb2.Job:
    job = job_pb2.Job(id=job_id, type="noop", max_attempts=3)
    job.timeout.FromSeconds(30)
    job.created_at.FromDatetime(created)
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.jobs:,} jobs per run; CPU of the store's processes")
    print(f"{'ids':>4}  {'event store µs/event':>20}  {'PostgreSQL µs/job':>17}")
    for repeat in range(args.repeats):
        order = list(SCHEMES) if repeat % 2 == 0 else list(reversed(SCHEMES))
        for name in order:
            events_us = event_store_us_per_event(SCHEMES[name], args.jobs)
            jobs_us = postgres_us_per_job(SCHEMES[name], args.jobs)
            print(f"{name:>4}  {events_us:>20.1f}  {jobs_us:>17.1f}", flush=True)


if __name__ == "__main__":
    main()
