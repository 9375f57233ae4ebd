"""Measures what applying events costs Redis, per job, as jobs accumulate (a measurement, not a
test): Redis's CPU, its memory and its keys, against a throwaway Redis with the append-only file
on (as the local stack runs it).

    python -m services.aggregates.measure_apply [--store MODULE] [--jobs 10000 100000]

Per size, a fresh Redis takes that many jobs' events (created, started, completed, as the
services publish them: each with its event id and idempotency key) in calls of 300 events, as
the metrics engine sends them, and the table shows the per-job figures at the end.
`--store` names another module defining `Aggregates` (e.g. an older version, to compare).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from datetime import UTC, datetime, timedelta

from services.aggregates.facts import facts_of
from services.common import redis_store
from services.metrics_engine.sample_events import completed_job_batches
from tools.bench import cpu
from tools.testing.servers import RedisServer

EVENTS_PER_BATCH = 300  # the metrics engine's batches at full speed


def measure(store_module: str, jobs: int) -> tuple[float, float, float]:
    """(Redis CPU µs, memory bytes, keys) per job after `jobs` jobs."""
    store = importlib.import_module(store_module)
    start = datetime.now(UTC) - timedelta(seconds=jobs // 1000)
    with tempfile.TemporaryDirectory() as state_dir:
        server = RedisServer(state_dir, persist=True)
        server.start()
        try:
            client = redis_store.connect(server.info.url)
            aggregates = store.Aggregates(client)
            empty_memory = int(client.info("memory")["used_memory"])
            before = cpu.cpu_seconds({"redis": server.pid})
            for batch in completed_job_batches(jobs, start, EVENTS_PER_BATCH):
                aggregates.apply([facts_of(event) for event in batch])
            cpu_s = cpu.delta(before, cpu.cpu_seconds({"redis": server.pid}))["redis"]
            memory = int(client.info("memory")["used_memory"]) - empty_memory
            keys = int(client.dbsize())
        finally:
            server.stop()
    return cpu_s * 1e6 / jobs, memory / jobs, keys / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="services.aggregates.store")
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(f"{args.store}: per job, 3 events each, calls of {EVENTS_PER_BATCH} events")
    print(f"{'jobs':>9}  {'Redis CPU µs':>12}  {'memory bytes':>12}  {'keys':>5}")
    for jobs in args.jobs:
        cpu_us, memory, keys = measure(args.store, jobs)
        print(f"{jobs:>9,}  {cpu_us:>12.1f}  {memory:>12,.0f}  {keys:>5.2f}")


if __name__ == "__main__":
    main()
