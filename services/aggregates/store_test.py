"""Applying events to Redis in batches (each event counted once, whatever the batch holds) and
reading them back as stats: counts, throughput buckets, latency quantiles within the bound."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import EventFacts, facts_of
from services.aggregates.histogram import ERROR, PERCENTILES, bucket_of, nearest_rank
from services.aggregates.store import (
    COMPLETED_JOB_TTL_S,
    EVENTS_PER_CALL,
    LATENCY_BUCKET_TTL_S,
    LATENCY_WINDOW_MS,
    MINUTE_BUCKET_TTL_S,
    PREFIX,
    SECOND_BUCKET_TTL_S,
    Aggregates,
)
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


def test_a_job_keeps_its_markers_in_its_hash_which_expires_a_day_after_it_completed(
    redis_server: RedisServer,
) -> None:
    """No key per event, so Redis's memory grows with jobs, not events; a completed job's state
    is dropped after the dedupe window, and any other job's is kept (RetryJob may move it)."""
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    now = datetime.now(UTC)
    done = JobStory(now).created().started(1, 5).completed(1, 10)
    failed = JobStory(now).created().started(1, 5).failed(1, 10)
    running = JobStory(now).created().started(1, 5)
    aggregates.apply([facts_of(e) for story in (done, failed, running) for e in story.events])

    assert client.keys(PREFIX + "seen:*") == []
    assert len(client.keys(PREFIX + "job:*")) == 3
    assert client.hgetall(PREFIX + "job:" + done.job_id).keys() >= {
        "status",
        *(f"e:{e.event_id}" for e in done.events),
    }
    assert (
        COMPLETED_JOB_TTL_S - 60 < client.ttl(PREFIX + "job:" + done.job_id) <= COMPLETED_JOB_TTL_S
    )
    assert client.ttl(PREFIX + "job:" + failed.job_id) == -1  # no expiry
    assert client.ttl(PREFIX + "job:" + running.job_id) == -1

    hourly = Aggregates(client, completed_job_ttl_s=3600)  # the window is a setting
    quick = JobStory(now).created().started(1, 5).completed(1, 10)
    hourly.apply([facts_of(e) for e in quick.events])
    assert 3540 < client.ttl(PREFIX + "job:" + quick.job_id) <= 3600


def test_a_change_republished_under_a_new_event_id_counts_once(redis_server: RedisServer) -> None:
    """The idempotency key names the change: a producer that re-publishes it after a crash may
    mint a new event id, in the same call or a later one. A key naming another job is its own."""
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    story = JobStory(datetime.now(UTC)).created().started(1, 5).completed(1, 10)
    created, started, completed = (facts_of(e) for e in story.events)
    assert aggregates.apply([created, started, started._replace(event_id="copy-1")]) == [
        True,
        True,
        False,
    ]
    assert aggregates.apply([completed._replace(event_id="copy-2"), completed]) == [True, False]
    # A key given by another producer: the same key on another job is another change, and a
    # key that reads like the tail of one of ours is not one of ours.
    other = JobStory(datetime.now(UTC)).created().started(1, 5)
    custom = JobStory(datetime.now(UTC)).created()
    shared = [
        facts_of(e)._replace(idempotency_key="shared") for e in (*other.events, *custom.events)
    ]
    assert aggregates.apply(shared) == [True, False, True]
    tail = completed.idempotency_key.removeprefix(story.job_id + "/")
    lookalike = facts_of(story.retry(1, 5).events[-1])._replace(idempotency_key=tail)
    assert aggregates.apply([lookalike]) == [True]
    totals = aggregates.totals()
    assert (totals["submitted"], totals["started"], totals["completed"]) == (3, 1, 1)


def test_events_marked_by_the_former_seen_keys_still_count_once(redis_server: RedisServer) -> None:
    """A store written before the markers moved into the job hash: its seen:<event_id> keys
    (kept a day) still stop a redelivery of an event applied then."""
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    story = JobStory(datetime.now(UTC)).created().started(1, 5).completed(1, 10)
    created, started, completed = (facts_of(e) for e in story.events)
    assert aggregates.apply([created]) == [True]
    job_key = PREFIX + "job:" + story.job_id  # as the former script left it: no e: field
    marker = "j:" + created.idempotency_key.removeprefix(story.job_id + "/")
    assert client.hdel(job_key, f"e:{created.event_id}", marker) == 2
    client.set(PREFIX + "seen:" + created.event_id, "1", ex=COMPLETED_JOB_TTL_S)
    # A change applied then under another event id, known by its idempotency key alone.
    client.set(PREFIX + "seen:key:" + started.idempotency_key, "1", ex=COMPLETED_JOB_TTL_S)

    # ...and still after the first new marker is written to the job's hash.
    assert aggregates.apply([completed, created]) == [True, False]
    assert aggregates.apply([created, started]) == [False, False]
    assert aggregates.totals()["submitted"] == 1
    assert aggregates.totals()["started"] == 0


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


# The script sums a call's counter writes and writes each job hash once: what it must keep is
# the result of applying the events one at a time, in order.


def status_counts(aggregates: Aggregates) -> dict[int, int]:
    return {c.status: c.count for c in aggregates.stats().by_status if c.count}


def type_counts(aggregates: Aggregates) -> dict[str, dict[int, int]]:
    return {
        t.type: {c.status: c.count for c in t.by_status if c.count}
        for t in aggregates.stats().by_type
    }


def test_later_events_of_a_job_in_the_same_call_see_the_earlier_ones(
    redis_server: RedisServer,
) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    now = datetime.now(UTC) - timedelta(seconds=30)
    done = JobStory(now, job_type="email").created().started(1, 5).completed(1, 10)
    late = JobStory(now, job_type="resize").created().started(1, 5).completed(1, 10)
    running = JobStory(now, job_type="resize").created().started(1, 5)
    created, started, completed = late.events
    # job.created after the job's later events, all in one call: the type still gets the job
    batch = [*done.events, started, completed, created, running.events[1], running.events[0]]
    assert len(batch) <= EVENTS_PER_CALL
    assert aggregates.apply([facts_of(e) for e in batch]) == [True] * len(batch)

    completed_status, running_status = 4, 2  # JOB_STATUS_COMPLETED, JOB_STATUS_RUNNING
    assert status_counts(aggregates) == {completed_status: 2, running_status: 1}
    assert type_counts(aggregates) == {
        "email": {completed_status: 1},
        "resize": {completed_status: 1, running_status: 1},
    }
    # Only the in-order job's end-to-end latency is known (created_ms came last for the other).
    assert aggregates.stats().end_to_end.sample_count == 1


def test_duplicates_inside_one_call_count_once(redis_server: RedisServer) -> None:
    aggregates = Aggregates(redis_store.connect(redis_server.info.url))
    story = JobStory(datetime.now(UTC)).created().started(1, 5).completed(1, 10)
    created, started, completed = (facts_of(e) for e in story.events)
    applied = aggregates.apply([created, started, created, completed, started, completed])
    assert applied == [True, True, False, True, False, False]
    totals = aggregates.totals()
    assert (totals["submitted"], totals["started"], totals["completed"]) == (1, 1, 1)
    assert status_counts(aggregates) == {4: 1}  # JOB_STATUS_COMPLETED
    stats = aggregates.stats()
    assert (stats.queue_wait.sample_count, stats.run.sample_count) == (1, 1)


def test_a_call_spanning_minutes_writes_each_minutes_keys_with_their_ttls(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    aggregates = Aggregates(client)
    now = datetime.now(UTC)
    stories = [
        JobStory(now - timedelta(seconds=s)).created().started(1, 5).completed(1, 10)
        for s in (200, 140, 80, 20)
    ]
    events = [facts_of(e) for story in stories for e in story.events]
    assert len(events) <= EVENTS_PER_CALL  # one script call
    aggregates.apply(events)

    by_minute = Counter(f.occurred_ms // 60_000 for f in events)
    assert len(by_minute) >= 3
    for minute, count in by_minute.items():
        assert int(client.get(f"{PREFIX}gen:{minute}") or 0) == count
        assert_ttl(client, f"{PREFIX}gen:{minute}", MINUTE_BUCKET_TTL_S)
        assert_ttl(client, f"{PREFIX}tp:m:{minute}", MINUTE_BUCKET_TTL_S)
        for kind in ("queue_wait", "run", "end_to_end"):
            assert_ttl(client, f"{PREFIX}lat:{kind}:m:{minute}", LATENCY_BUCKET_TTL_S)
    for second in {f.occurred_ms // 1000 for f in events if f.throughput_field}:
        assert_ttl(client, f"{PREFIX}tp:s:{second}", SECOND_BUCKET_TTL_S)
    assert sum(b.submitted for b in aggregates.stats(now).throughput[1].buckets) == 4


def assert_ttl(client: redis.Redis, key: str, ttl_s: int) -> None:
    assert ttl_s - 5 <= client.ttl(key) <= ttl_s, key


def mixed_events(now: datetime, rng: random.Random) -> list[EventFacts]:
    """Jobs of several types over several minutes, finishing every way, some events redelivered
    and the order shuffled locally (a job's later events may come before its job.created)."""
    envelopes = []
    for n in range(120):
        story = JobStory(now - timedelta(seconds=rng.randint(5, 280)), job_type=rng.choice("abc"))
        story.created().started(1, rng.randint(0, 3_000))
        ending = n % 5
        if ending == 0:
            story.retry(1, rng.randint(1, 500)).started(2, 100).completed(2, rng.randint(1, 900))
        elif ending == 1:
            story.failed(1, rng.randint(1, 900)).dead_lettered(1)
        elif ending == 2:
            pass  # still running
        else:
            story.completed(1, rng.randint(1, 60_000))
        envelopes += story.events
    envelopes += rng.sample(envelopes, 40)  # redeliveries
    keyed = sorted(
        (e.occurred_at.ToMilliseconds() + rng.randint(-2_000, 2_000), i, e)
        for i, e in enumerate(envelopes)
    )
    return [facts_of(e) for _, _, e in keyed]


def stored(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Everything the aggregates hold under `prefix` but the epoch; hash fields at 0 are left
    out (readers take a missing field as 0) and a TTL is shown as whether there is one."""
    held: dict[str, object] = {}
    for key in client.scan_iter(match=prefix + "*"):
        name = key.removeprefix(prefix)
        kind = client.type(key)
        if name == "epoch":
            continue
        if kind == "hash":
            value: object = {f: v for f, v in client.hgetall(key).items() if v != "0"}
            if not value:
                continue
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = client.get(key)
        held[name] = (value, client.ttl(key) > 0)
    return held


def test_a_batch_leaves_the_store_as_applying_its_events_one_per_call_does(
    redis_server: RedisServer,
) -> None:
    client = redis_store.connect(redis_server.info.url)
    now = datetime.now(UTC)
    events = mixed_events(now, random.Random(5))
    assert len(events) > 3 * EVENTS_PER_CALL
    batched, single = Aggregates(client, "batched:"), Aggregates(client, "single:")

    applied = batched.apply(events)
    assert applied == [single.apply([f])[0] for f in events]
    assert applied.count(False) == 40
    assert stored(client, "batched:") == stored(client, "single:")
    batched_stats, single_stats = batched.stats(now), single.stats(now)
    assert batched_stats == single_stats
    assert batched_stats.end_to_end.sample_count > 0
