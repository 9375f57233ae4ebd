"""Measures `Aggregates.stats()` latency against a throwaway Redis (a measurement, not a test).

    python -m services.aggregates.measure_stats [--store MODULE] [--calls 300] [--jobs 10000]

Runs 300 stats() calls on an empty store, then records `--jobs` jobs (created, started,
completed: one queue-wait, one run and one end-to-end sample each, so 3 x jobs samples, all
inside the latency window) and runs 300 calls again ("idle": nothing changes between calls),
then 300 calls each after one more job's events were applied ("busy": what a poller sees while
jobs run; the apply is not timed); prints p50/p99 of each run.
`--store` names another module defining `Aggregates` (e.g. an older version, to compare).
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from services.aggregates.facts import facts_of
from services.common import redis_store
from services.metrics_engine.sample_events import JobStory
from tools.testing.servers import RedisServer


def timings(
    client: redis.Redis,
    call: Callable[[], object],
    calls: int,
    before_each: Callable[[], object] = lambda: None,
) -> str:
    """p50/p99 wall ms of `calls` timed calls (after warm-up), and, less sensitive to a busy
    machine, this process's CPU ms and Redis's own time (INFO commandstats) per call;
    `before_each` runs before every call, untimed (its Redis time is subtracted)."""
    for _ in range(5):
        call()
    cpu_s = server_us = 0.0
    spent = []
    for _ in range(calls):
        before_each()
        client.config_resetstat()
        cpu = time.process_time()
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1000)
        cpu_s += time.process_time() - cpu
        server_us += client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
    cpu_ms = cpu_s * 1000 / calls
    server_us /= calls
    cuts = statistics.quantiles(spent, n=100, method="inclusive")
    return (
        f"stats() p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms"
        f" (client CPU {cpu_ms:.2f} ms, Redis {server_us / 1000:.2f} ms per call)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="services.aggregates.store")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    store = importlib.import_module(args.store)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as state_dir:
        server = RedisServer(state_dir)
        server.start()
        try:
            client = redis_store.connect(server.info.url)
            aggregates = store.Aggregates(client)
            print(f"{args.store}: 0 samples: {timings(client, aggregates.stats, args.calls)}")
            start = datetime.now(UTC) - timedelta(minutes=4)
            facts = []
            for n in range(args.jobs):
                story = JobStory(start + timedelta(milliseconds=20 * n)).created()
                story.started(1, rng.randint(1, 5_000)).completed(1, rng.randint(1, 60_000))
                facts += [facts_of(event) for event in story.events]
            for begin in range(0, len(facts), 3_000):
                aggregates.apply(facts[begin : begin + 3_000])
            stats = aggregates.stats()
            samples = sum(q.sample_count for q in (stats.queue_wait, stats.run, stats.end_to_end))
            report = timings(client, aggregates.stats, args.calls)
            print(f"{args.store}: {samples} samples, idle: {report}")

            def one_more_job() -> None:
                story = JobStory(datetime.now(UTC) - timedelta(milliseconds=300)).created()
                story.started(1, rng.randint(1, 200)).completed(1, rng.randint(1, 2_000))
                aggregates.apply([facts_of(event) for event in story.events])

            report = timings(client, aggregates.stats, args.calls, one_more_job)
            print(f"{args.store}: {samples} samples, busy: {report}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
