"""stats() re-reads only what changed: what a reader relies on is that it still answers exactly
like a reader that holds nothing, and that every event applied before a call is in its answer
(new ones, late ones landing in past minutes, after the store was flushed), for every caller."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import EventFacts, facts_of
from services.aggregates.store import Aggregates
from services.common import redis_store
from services.metrics_engine.sample_events import JobStory
from tools.testing.servers import RedisServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration


def job(at: datetime, rng: random.Random, job_type: str = "echo") -> list[EventFacts]:
    """A job created at `at` that starts and then completes or fails (two latency samples)."""
    story = JobStory(at, job_type=job_type).created().started(1, rng.randint(0, 4_000))
    if rng.random() < 0.8:
        story.completed(1, rng.randint(0, 50_000))
    else:
        story.failed(1, rng.randint(0, 50_000))
    return [facts_of(event) for event in story.events]


def answer(stats: read_model_pb2.Stats) -> read_model_pb2.Stats:
    """The snapshot without its computed_at (the only field two equal answers may differ in)."""
    copy = read_model_pb2.Stats()
    copy.CopyFrom(stats)
    copy.ClearField("computed_at")
    return copy


def fresh_answer(client: redis.Redis, now: datetime) -> read_model_pb2.Stats:
    """What a reader that holds nothing answers: the reference."""
    return answer(Aggregates(client).stats(now))


def per_second_submitted(stats: read_model_pb2.Stats) -> int:
    return sum(bucket.submitted for bucket in stats.throughput[0].buckets)


def test_the_next_call_after_an_event_includes_it(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    for n in range(1, 21):
        before = aggregates.stats()  # holds everything read so far
        created = datetime.now(UTC) - timedelta(seconds=3)  # every event in the past
        story = JobStory(created).created().started(1, 1_000).completed(1, 500)
        aggregates.apply([facts_of(event) for event in story.events])
        after = aggregates.stats()
        assert after.total_jobs == before.total_jobs + 1 == n
        assert per_second_submitted(after) == per_second_submitted(before) + 1
        for kind in ("queue_wait", "run", "end_to_end"):
            counts = getattr(before, kind).sample_count, getattr(after, kind).sample_count
            assert counts[1] == counts[0] + 1, kind


def test_late_events_in_past_minutes_and_seconds_are_counted(redis_server: RedisServer) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    rng = random.Random(2)
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    aggregates.apply(job(now - timedelta(minutes=3), rng))
    aggregates.apply(job(now - timedelta(seconds=20), rng))
    held = aggregates.stats(now)  # every minute and second of the windows is now held
    # Late: minutes and seconds the reader already holds get new events.
    aggregates.apply(job(now - timedelta(minutes=3, seconds=5), rng))  # same past minute
    aggregates.apply(job(now - timedelta(minutes=40), rng))  # an hour-series minute, no latency
    aggregates.apply(job(now - timedelta(seconds=20), rng))  # the same past second
    aggregates.apply(job(now - timedelta(seconds=45), rng))  # a second of the previous minute
    late = aggregates.stats(now)

    assert late.total_jobs == held.total_jobs + 4
    assert sum(b.submitted for b in late.throughput[1].buckets) == 6
    assert per_second_submitted(late) == per_second_submitted(held) + 2
    assert late.queue_wait.sample_count == held.queue_wait.sample_count + 3
    assert answer(late) == fresh_answer(client, now)


def test_cached_answers_equal_a_fresh_readers_through_random_writes(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    rng = random.Random(3)
    start = datetime.now(UTC).replace(microsecond=0)
    types = ["email", "resize", "echo"]
    for step in range(40):
        now = start + timedelta(seconds=rng.choice([0, 0, 1, 7, 61]) * step)
        for _ in range(rng.randint(0, 5)):  # anywhere from 70 minutes ago to now
            at = now - timedelta(milliseconds=rng.randint(0, 70 * 60_000))
            aggregates.apply(job(at, rng, rng.choice(types)))
        assert answer(aggregates.stats(now)) == fresh_answer(client, now), step


def test_a_flushed_and_rewritten_store_is_not_mistaken_for_the_old_one(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    rng = random.Random(4)
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    aggregates.apply(job(now - timedelta(seconds=10), rng, "email"))
    assert [t.type for t in aggregates.stats(now).by_type] == ["email"]
    client.flushall()
    # The same number of events in the same minutes and seconds: equal counters, other data.
    writer = Aggregates(client)  # a restarted metrics engine
    writer.apply(job(now - timedelta(seconds=10), rng, "resize"))
    again = aggregates.stats(now)
    assert [t.type for t in again.by_type] == ["resize"]
    assert answer(again) == fresh_answer(client, now)


def test_concurrent_callers_see_consistent_snapshots_that_include_earlier_events(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    rng = random.Random(5)
    applied = 0  # jobs whose events were applied (read by callers before they call)
    done = threading.Event()
    failures: list[str] = []

    def write() -> None:
        nonlocal applied
        for _ in range(150):
            aggregates.apply(job(datetime.now(UTC) - timedelta(milliseconds=500), rng))
            applied += 1
        done.set()

    def read() -> None:
        last = 0
        while not done.is_set():
            before = applied
            stats = aggregates.stats()
            by_status = sum(count.count for count in stats.by_status)
            submitted = sum(b.submitted for b in stats.throughput[1].buckets)
            if not before <= stats.total_jobs == by_status == submitted:
                failures.append(f"applied {before}: {stats.total_jobs} {by_status} {submitted}")
            if stats.total_jobs < last:
                failures.append(f"went back from {last} to {stats.total_jobs}")
            last = stats.total_jobs

    threads = [threading.Thread(target=read) for _ in range(6)]
    threads.append(threading.Thread(target=write))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert aggregates.stats().total_jobs == 150


def test_a_failed_read_raises_and_the_next_call_reads_again(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    aggregates.apply(job(datetime.now(UTC), random.Random(6)))
    assert aggregates.stats().total_jobs == 1
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        aggregates.stats()
    replacement = RedisServer(tmp_path / "replacement", port=redis_server.info.port)
    replacement.start()  # an empty store where the old one was
    try:
        assert aggregates.stats().total_jobs == 0  # nothing held from the old store
    finally:
        replacement.stop()
