"""Live aggregates in Redis: written by the metrics engine, read by the read model.

Each event is applied by one Lua script, so deduplication (a seen-key per event id and per
idempotency key, kept a day) and every counter update happen atomically: a redelivered or
replayed event changes nothing. Keys (all under PREFIX):
  seen:<event_id>, seen:key:<idempotency_key>   dedupe markers (TTL SEEN_TTL_S)
  job:<job_id>     hash: status, type, created_ms, ord_t, ord_s (the job's latest applied event)
  status           hash: status name -> jobs currently in it
  type:<type>      hash: status name -> jobs of that type currently in it;  types: set of types
  totals           hash: submitted, started, retried, completed, failed, cancelled, dead_lettered
  tp:s:<epoch s>, tp:m:<epoch min>   hashes of THROUGHPUT counts per second / per minute
  lat:<kind>       sorted set of latency samples (score = occurred ms, member = "<id>:<ms>")
Job hashes are kept without expiry: a job's status must be known to move its count later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import redis
from google.protobuf.duration_pb2 import Duration
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import THROUGHPUT, TOTALS, EventFacts
from services.aggregates.quantiles import summary

PREFIX = "agg:"
SEEN_TTL_S = 24 * 3600
SAMPLE_CAP = 10_000  # per latency kind: bounds memory, plenty for p99
LATENCY_WINDOW_MS = 5 * 60 * 1000
SECOND_BUCKET_TTL_S = 3600 + 60
MINUTE_BUCKET_TTL_S = 24 * 3600
LATENCY_KINDS = ("queue_wait", "run", "end_to_end")

_APPLY = """
local p = ARGV[1]
local ttl = tonumber(ARGV[15])
if not redis.call('SET', p .. 'seen:' .. ARGV[2], '1', 'NX', 'EX', ttl) then return 0 end
if ARGV[3] ~= '' and not redis.call('SET', p .. 'seen:key:' .. ARGV[3], '1', 'NX', 'EX', ttl) then
  return 0
end
local jk = p .. 'job:' .. ARGV[4]
local new_status, job_type = ARGV[5], ARGV[6]
local occ, seq = tonumber(ARGV[7]), tonumber(ARGV[8])
local cur = redis.call('HMGET', jk, 'status', 'type', 'created_ms', 'ord_t', 'ord_s')
local cur_status, cur_type, created_ms = cur[1], cur[2], cur[3]
if job_type ~= '' and not cur_type then
  -- the type arrives with job.created, possibly after later events of the job
  redis.call('HSET', jk, 'type', job_type, 'created_ms', occ)
  cur_type, created_ms = job_type, occ
  redis.call('SADD', p .. 'types', job_type)
  if cur_status then redis.call('HINCRBY', p .. 'type:' .. job_type, cur_status, 1) end
end
local newer = (not cur[4]) or occ > tonumber(cur[4])
  or (occ == tonumber(cur[4]) and seq > tonumber(cur[5]))
if newer then
  if cur_status ~= new_status then
    if cur_status then
      redis.call('HINCRBY', p .. 'status', cur_status, -1)
      if cur_type then redis.call('HINCRBY', p .. 'type:' .. cur_type, cur_status, -1) end
    end
    redis.call('HINCRBY', p .. 'status', new_status, 1)
    if cur_type then redis.call('HINCRBY', p .. 'type:' .. cur_type, new_status, 1) end
  end
  redis.call('HSET', jk, 'status', new_status, 'ord_t', occ, 'ord_s', seq)
end
redis.call('HINCRBY', p .. 'totals', ARGV[9], 1)
if ARGV[10] ~= '' then
  local sk = p .. 'tp:s:' .. math.floor(occ / 1000)
  local mk = p .. 'tp:m:' .. math.floor(occ / 60000)
  redis.call('HINCRBY', sk, ARGV[10], 1)
  redis.call('EXPIRE', sk, tonumber(ARGV[16]))
  redis.call('HINCRBY', mk, ARGV[10], 1)
  redis.call('EXPIRE', mk, tonumber(ARGV[17]))
end
local function sample(kind, value)
  local k = p .. 'lat:' .. kind
  redis.call('ZADD', k, occ, ARGV[2] .. ':' .. value)
  redis.call('ZREMRANGEBYRANK', k, 0, -tonumber(ARGV[14]) - 1)
end
if ARGV[11] ~= '' then sample('queue_wait', ARGV[11]) end
if ARGV[12] ~= '' then sample('run', ARGV[12]) end
if ARGV[13] == '1' and created_ms then sample('end_to_end', occ - tonumber(created_ms)) end
return 1
"""


def status_key(status: job_pb2.JobStatus.ValueType) -> str:
    return job_pb2.JobStatus.Name(status).removeprefix("JOB_STATUS_").lower()


class Aggregates:
    """The aggregate store over one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._apply = client.register_script(_APPLY)

    def apply(self, batch: Sequence[EventFacts]) -> list[bool]:
        """Applies events in order in one round trip; True where the event was new."""
        pipe = self._redis.pipeline(transaction=False)
        for facts in batch:
            self._apply(args=self._args(facts), client=pipe)
        return [bool(result) for result in pipe.execute()]

    def _args(self, f: EventFacts) -> list[str | int]:
        def optional(value: int | None) -> str:
            return "" if value is None else str(value)

        return [
            self._prefix,
            f.event_id,
            f.idempotency_key,
            f.job_id,
            status_key(f.status),
            f.job_type,
            f.occurred_ms,
            f.sequence,
            f.totals_field,
            f.throughput_field,
            optional(f.queue_wait_ms),
            optional(f.run_ms),
            "1" if f.terminal else "0",
            SAMPLE_CAP,
            SEEN_TTL_S,
            SECOND_BUCKET_TTL_S,
            MINUTE_BUCKET_TTL_S,
        ]

    def totals(self) -> dict[str, int]:
        raw = self._redis.hgetall(self._prefix + "totals")
        return {name: int(raw.get(name, 0)) for name in TOTALS}

    def stats(self, now: datetime | None = None) -> read_model_pb2.Stats:
        """A snapshot: counts, throughput (1m by second, 1h by minute), latency quantiles."""
        now = now or datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        p = self._prefix
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(p + "status")
        pipe.smembers(p + "types")
        now_s, now_min = now_ms // 1000, now_ms // 60000
        seconds = range(now_s - 59, now_s + 1)
        minutes = range(now_min - 59, now_min + 1)
        for second in seconds:
            pipe.hgetall(f"{p}tp:s:{second}")
        for minute in minutes:
            pipe.hgetall(f"{p}tp:m:{minute}")
        for kind in LATENCY_KINDS:
            pipe.zrangebyscore(f"{p}lat:{kind}", now_ms - LATENCY_WINDOW_MS, "+inf")
        results = pipe.execute()
        by_status, types = results[0], sorted(results[1])
        tp = results[2 : 2 + len(seconds) + len(minutes)]
        latencies = results[2 + len(seconds) + len(minutes) :]
        type_counts = self._type_counts(types)

        stats = read_model_pb2.Stats(by_status=_status_counts(by_status))
        stats.computed_at.FromDatetime(now)
        stats.total_jobs = sum(count.count for count in stats.by_status)
        for job_type, counts in zip(types, type_counts, strict=True):
            entry = stats.by_type.add(type=job_type, by_status=_status_counts(counts))
            entry.total = sum(count.count for count in entry.by_status)
        stats.throughput.append(_series(60, 1, seconds, tp[: len(seconds)]))
        stats.throughput.append(_series(3600, 60, minutes, tp[len(seconds) :]))
        stats.latency_window.FromMilliseconds(LATENCY_WINDOW_MS)
        for kind, members in zip(LATENCY_KINDS, latencies, strict=True):
            samples = [int(member.rsplit(":", 1)[1]) for member in members]
            p50, p95, p99, count = summary(samples)
            target = getattr(stats, kind)
            target.sample_count = count
            for name, value in (("p50", p50), ("p95", p95), ("p99", p99)):
                getattr(target, name).FromMilliseconds(int(value))
        return stats

    def _type_counts(self, types: list[str]) -> list[dict[str, str]]:
        pipe = self._redis.pipeline(transaction=False)
        for job_type in types:
            pipe.hgetall(f"{self._prefix}type:{job_type}")
        return list(pipe.execute())

    def ping(self) -> bool:
        return bool(self._redis.ping())


def _status_counts(raw: dict[str, str]) -> list[read_model_pb2.StatusCount]:
    return [
        read_model_pb2.StatusCount(status=status, count=int(raw.get(status_key(status), 0)))
        for status in job_pb2.JobStatus.values()
        if status != job_pb2.JOB_STATUS_UNSPECIFIED
    ]


def _series(
    window_s: int, width_s: int, starts: range, buckets: list[dict[str, str]]
) -> read_model_pb2.ThroughputSeries:
    series = read_model_pb2.ThroughputSeries(
        window=Duration(seconds=window_s), bucket_width=Duration(seconds=width_s)
    )
    for start, counts in zip(starts, buckets, strict=True):
        bucket = series.buckets.add(**{name: int(counts.get(name, 0)) for name in THROUGHPUT})
        bucket.start_time.FromDatetime(datetime.fromtimestamp(start * width_s, UTC))
    return series
