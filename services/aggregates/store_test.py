"""Applying events to Redis in batches (each event counted once, whatever the batch holds) and
reading them back as stats: counts, throughput buckets, latency quantiles within the bound."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import facts_of
from services.aggregates.histogram import ERROR, PERCENTILES, bucket_of, nearest_rank
from services.aggregates.store import EVENTS_PER_CALL, LATENCY_WINDOW_MS, PREFIX, Aggregates
from services.common import redis_store
from services.metrics_engine.sample_events import JobStory
from tools.testing.servers import RedisServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration


def test_duplicates_inside_and_across_batches_count_once(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    now = datetime.now(UTC)
    stories = [JobStory(now).created().started(1, 5).completed(1, 10) for _ in range(60)]
    events = [facts_of(e) for story in stories for e in story.events]  # 180: two script calls
    assert len(events) > EVENTS_PER_CALL
    first, again = events[0], events[-1]
    applied = aggregates.apply([*events, first, again])  # repeats inside the batch
    assert applied == [True] * len(events) + [False, False]
    assert aggregates.apply(events[:10]) == [False] * 10  # a redelivered batch
    totals = aggregates.totals()
    assert (totals["submitted"], totals["started"], totals["completed"]) == (60, 60, 60)
    by_status = {c.status: c.count for c in aggregates.stats().by_status if c.count}
    assert list(by_status.values()) == [60]  # every job counted once, as completed


def test_an_empty_batch_changes_nothing(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    assert aggregates.apply([]) == []
    assert aggregates.totals()["submitted"] == 0


def exact_percentile(samples: list[int], percent: int) -> int:
    return sorted(samples)[nearest_rank(percent, len(samples)) - 1]


def quantiles(q: read_model_pb2.LatencyQuantiles) -> tuple[list[int], int]:
    return [getattr(q, f"p{p}").ToMilliseconds() for p in PERCENTILES], q.sample_count


def test_latency_quantiles_are_within_the_bound_and_duplicates_add_no_sample(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    rng = random.Random(3)
    now = datetime.now(UTC)
    waits = [rng.randint(0, 3_000) for _ in range(300)]
    runs = [int(rng.lognormvariate(6, 1.5)) for _ in range(300)]
    stories = [
        JobStory(now - timedelta(seconds=90)).created().started(1, wait).completed(1, run)
        for wait, run in zip(waits, runs, strict=True)
    ]
    events = [facts_of(e) for story in stories for e in story.events]
    aggregates.apply(events)
    aggregates.apply(events[::7])  # redelivered: must not count twice
    stats = aggregates.stats()

    ends = [wait + run for wait, run in zip(waits, runs, strict=True)]
    for q, samples in ((stats.queue_wait, waits), (stats.run, runs), (stats.end_to_end, ends)):
        values, count = quantiles(q)
        assert count == len(samples)
        for percent, value in zip(PERCENTILES, values, strict=True):
            exact = exact_percentile(samples, percent)
            assert abs(value - exact) <= ERROR * (exact + 1) + 0.5, (percent, value, exact)
    assert stats.latency_window.ToMilliseconds() == LATENCY_WINDOW_MS

    # The script buckets with the same formula as the Python side.
    minute = int(stories[0].events[2].occurred_at.ToMilliseconds()) // 60_000
    stored = {int(k): int(v) for k, v in client.hgetall(f"{PREFIX}lat:run:m:{minute}").items()}
    on_time = [
        r
        for r, s in zip(runs, stories, strict=True)
        if s.events[2].occurred_at.ToMilliseconds() // 60_000 == minute
    ]
    assert stored == Counter(bucket_of(run) for run in on_time)


def test_latency_outside_the_window_is_not_counted(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    now = datetime.now(UTC)
    story = JobStory(now - timedelta(minutes=2)).created().started(1, 40).completed(1, 900)
    aggregates.apply([facts_of(e) for e in story.events])
    assert aggregates.stats(now).run.sample_count == 1
    later = aggregates.stats(now + timedelta(minutes=10))
    assert (later.queue_wait.sample_count, later.run.sample_count) == (0, 0)
    assert quantiles(later.end_to_end) == ([0, 0, 0], 0)


def test_throughput_and_type_counts_land_in_their_buckets(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    now = datetime.now(UTC).replace(microsecond=0)
    stories = [
        JobStory(now - timedelta(seconds=10), job_type="email").created().started(1, 5),
        JobStory(now - timedelta(seconds=10), job_type="resize").created().started(1, 5),
        JobStory(now - timedelta(seconds=3), job_type="resize").created(),
    ]
    stories[0].completed(1, 10)
    aggregates.apply([facts_of(e) for story in stories for e in story.events])
    stats = aggregates.stats(now)

    by_second, by_minute = stats.throughput
    assert (len(by_second.buckets), len(by_minute.buckets)) == (60, 60)
    assert by_second.bucket_width.seconds == 1 and by_minute.bucket_width.seconds == 60
    assert by_second.buckets[-1].start_time.seconds == int(now.timestamp())
    submitted = {
        int(now.timestamp()) - b.start_time.seconds: b.submitted
        for b in by_second.buckets
        if b.submitted
    }
    assert submitted == {10: 2, 3: 1}
    assert sum(b.completed for b in by_second.buckets) == 1
    assert sum(b.submitted for b in by_minute.buckets) == 3
    by_type = {t.type: t.total for t in stats.by_type}
    assert by_type == {"email": 1, "resize": 2}
    assert stats.total_jobs == 3
