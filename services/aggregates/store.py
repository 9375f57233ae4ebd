"""Live aggregates in Redis: written by the metrics engine, read by the read model.

Events are applied by one Lua script (a run of events per call, one round trip per batch), so
each event's deduplication (a seen-key per event id and per idempotency key, kept a day) and its
counter updates happen atomically: a redelivered or replayed event changes nothing.
Keys (all under PREFIX):
  seen:<event_id>, seen:key:<idempotency_key>   dedupe markers (TTL SEEN_TTL_S)
  job:<job_id>     hash: status, type, created_ms, ord_t, ord_s (the job's latest applied event)
  status           hash: status name -> jobs currently in it
  type:<type>      hash: status name -> jobs of that type currently in it;  types: set of types
  totals           hash: submitted, started, retried, completed, failed, cancelled, dead_lettered
  tp:s:<epoch s>, tp:m:<epoch min>   hashes of THROUGHPUT counts per second / per minute
  lat:<kind>:m:<epoch min>   hash: latency bucket index -> samples (histogram.py) of the
                   events that occurred in that minute; kept LATENCY_BUCKET_TTL_S after a write
Job hashes are kept without expiry: a job's status must be known to move its count later.
stats() reads a fixed number of keys (its cost does not grow with the event rate): counts,
120 throughput hashes and 3 x 6 latency histograms of at most a few hundred fields each.
Latency samples are counted after the event's dedupe check, like every other counter, so a
duplicate event adds no sample. (The former `lat:<kind>` sorted sets are no longer read or
written; an old local store can drop them: `DEL agg:lat:queue_wait agg:lat:run agg:lat:end_to_end`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import redis
from google.protobuf.duration_pb2 import Duration
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import THROUGHPUT, TOTALS, EventFacts
from services.aggregates.histogram import GROWTH, PERCENTILES, percentiles

PREFIX = "agg:"
SEEN_TTL_S = 24 * 3600
LATENCY_WINDOW_MS = 5 * 60 * 1000
# Latency is kept per minute: stats() sums the minutes overlapping the window (5 to 6 minutes).
LATENCY_BUCKET_TTL_S = LATENCY_WINDOW_MS // 1000 + 2 * 60
SECOND_BUCKET_TTL_S = 3600 + 60
MINUTE_BUCKET_TTL_S = 24 * 3600
LATENCY_KINDS = ("queue_wait", "run", "end_to_end")

# Applies a run of events in order; returns one 0/1 per event (1: new). ARGV: prefix, seen TTL,
# latency-histogram TTL, second-bucket TTL, minute-bucket TTL, histogram growth, then FIELDS
# values per event. The bucket index is histogram.bucket_of's formula.
_APPLY = """
local p = ARGV[1]
local ttl, lat_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local sec_ttl, min_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local log_growth = math.log(tonumber(ARGV[6]))
local function apply(a)
  local eid, ikey = ARGV[a], ARGV[a + 1]
  if not redis.call('SET', p .. 'seen:' .. eid, '1', 'NX', 'EX', ttl) then return 0 end
  if ikey ~= '' and not redis.call('SET', p .. 'seen:key:' .. ikey, '1', 'NX', 'EX', ttl) then
    return 0
  end
  local jk = p .. 'job:' .. ARGV[a + 2]
  local new_status, job_type = ARGV[a + 3], ARGV[a + 4]
  local occ, seq = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
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
  redis.call('HINCRBY', p .. 'totals', ARGV[a + 7], 1)
  local tp = ARGV[a + 8]
  if tp ~= '' then
    local sk = p .. 'tp:s:' .. math.floor(occ / 1000)
    local mk = p .. 'tp:m:' .. math.floor(occ / 60000)
    redis.call('HINCRBY', sk, tp, 1)
    redis.call('EXPIRE', sk, sec_ttl)
    redis.call('HINCRBY', mk, tp, 1)
    redis.call('EXPIRE', mk, min_ttl)
  end
  local function sample(kind, value)
    local ms = tonumber(value)
    local bucket = 0
    if ms > 0 then bucket = math.ceil(math.log(ms + 1) / log_growth) end
    local k = p .. 'lat:' .. kind .. ':m:' .. math.floor(occ / 60000)
    redis.call('HINCRBY', k, bucket, 1)
    redis.call('EXPIRE', k, lat_ttl)
  end
  if ARGV[a + 9] ~= '' then sample('queue_wait', ARGV[a + 9]) end
  if ARGV[a + 10] ~= '' then sample('run', ARGV[a + 10]) end
  if ARGV[a + 11] == '1' and created_ms then sample('end_to_end', occ - tonumber(created_ms)) end
  return 1
end
local applied = {}
for a = 7, #ARGV, 12 do applied[#applied + 1] = apply(a) end
return applied
"""
FIELDS = 12  # values per event in _APPLY's ARGV

# Reads everything stats() needs in one call, packing the many small numbers into a few strings
# (parsing thousands of RESP replies costs more than the reads). ARGV: prefix, now (epoch s),
# now (epoch min), first latency minute, then the THROUGHPUT fields. Returns: status hash (flat),
# sorted types, each type's hash (flat), per-second and per-minute throughput as
# "n,n,n,n;..." (60 rows each, oldest first), then per latency kind the histogram summed over
# the minutes as "index:count,...".
_STATS = """
local p = ARGV[1]
local now_s, now_min, lat_from = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local function series(width, last)
  local rows = {}
  for t = last - 59, last do
    local values = redis.call('HMGET', p .. 'tp:' .. width .. ':' .. t, unpack(fields))
    for i = 1, #values do values[i] = values[i] or '0' end
    rows[#rows + 1] = table.concat(values, ',')
  end
  return table.concat(rows, ';')
end
local function histogram(kind)
  local sums, order = {}, {}
  for minute = lat_from, now_min do
    local flat = redis.call('HGETALL', p .. 'lat:' .. kind .. ':m:' .. minute)
    for i = 1, #flat, 2 do
      local index = flat[i]
      if not sums[index] then sums[index] = 0; order[#order + 1] = index end
      sums[index] = sums[index] + tonumber(flat[i + 1])
    end
  end
  local parts = {}
  for i, index in ipairs(order) do parts[i] = index .. ':' .. string.format('%d', sums[index]) end
  return table.concat(parts, ',')
end
local types = redis.call('SMEMBERS', p .. 'types')
table.sort(types)
local type_counts = {}
for i, t in ipairs(types) do type_counts[i] = redis.call('HGETALL', p .. 'type:' .. t) end
return {
  redis.call('HGETALL', p .. 'status'), types, type_counts,
  series('s', now_s), series('m', now_min),
  histogram('queue_wait'), histogram('run'), histogram('end_to_end'),
}
"""
EVENTS_PER_CALL = 100  # bounds how long one script call holds Redis


def event_args(f: EventFacts) -> list[str | int]:
    """One event's FIELDS values for _APPLY."""

    def optional(value: int | None) -> str:
        return "" if value is None else str(value)

    return [
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
    ]


def status_key(status: job_pb2.JobStatus.ValueType) -> str:
    return job_pb2.JobStatus.Name(status).removeprefix("JOB_STATUS_").lower()


class Aggregates:
    """The aggregate store over one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._apply = client.register_script(_APPLY)
        self._stats = client.register_script(_STATS)

    def apply(self, batch: Sequence[EventFacts]) -> list[bool]:
        """Applies events in order in one round trip (one script call per EVENTS_PER_CALL
        events, each atomic); True where the event was new."""
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(batch), EVENTS_PER_CALL):
            args: list[str | int] = [
                self._prefix,
                SEEN_TTL_S,
                LATENCY_BUCKET_TTL_S,
                SECOND_BUCKET_TTL_S,
                MINUTE_BUCKET_TTL_S,
                repr(GROWTH),
            ]
            for facts in batch[start : start + EVENTS_PER_CALL]:
                args += event_args(facts)
            self._apply(args=args, client=pipe)
        return [bool(new) for chunk in pipe.execute() for new in chunk]

    def totals(self) -> dict[str, int]:
        raw = self._redis.hgetall(self._prefix + "totals")
        return {name: int(raw.get(name, 0)) for name in TOTALS}

    def stats(self, now: datetime | None = None) -> read_model_pb2.Stats:
        """A snapshot: counts, throughput (1m by second, 1h by minute), latency quantiles.
        One script call: a fixed number of keys read, a few strings back (see _STATS)."""
        now = now or datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        now_s, now_min = now_ms // 1000, now_ms // 60000
        latency_from = (now_ms - LATENCY_WINDOW_MS) // 60000
        raw = self._stats(args=[self._prefix, now_s, now_min, latency_from, *THROUGHPUT])
        by_status, types, type_counts, per_second, per_minute, *latencies = raw

        stats = read_model_pb2.Stats(by_status=_status_counts(_pairs(by_status)))
        stats.computed_at.FromDatetime(now)
        stats.total_jobs = sum(count.count for count in stats.by_status)
        for job_type, counts in zip(types, type_counts, strict=True):
            entry = stats.by_type.add(type=job_type, by_status=_status_counts(_pairs(counts)))
            entry.total = sum(count.count for count in entry.by_status)
        stats.throughput.append(_series(60, 1, now_s - 59, per_second))
        stats.throughput.append(_series(3600, 60, now_min - 59, per_minute))
        stats.latency_window.FromMilliseconds(LATENCY_WINDOW_MS)
        for kind, histogram in zip(LATENCY_KINDS, latencies, strict=True):
            values, count = percentiles(_histogram(histogram))
            target = getattr(stats, kind)
            target.sample_count = count
            for percent, value in zip(PERCENTILES, values, strict=True):
                getattr(target, f"p{percent}").FromMilliseconds(value)
        return stats

    def ping(self) -> bool:
        return bool(self._redis.ping())


def _status_counts(raw: dict[str, str]) -> list[read_model_pb2.StatusCount]:
    return [
        read_model_pb2.StatusCount(status=status, count=int(raw.get(status_key(status), 0)))
        for status in job_pb2.JobStatus.values()
        if status != job_pb2.JOB_STATUS_UNSPECIFIED
    ]


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash from HGETALL's flat field, value, ... list (as a script returns it)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _histogram(packed: str) -> dict[int, int]:
    """Bucket index -> count from _STATS's "index:count,..." string."""
    counts: dict[int, int] = {}
    for pair in filter(None, packed.split(",")):
        index, count = pair.split(":")
        counts[int(index)] = int(count)
    return counts


def _series(
    window_s: int, width_s: int, first: int, packed: str
) -> read_model_pb2.ThroughputSeries:
    """A series from _STATS's "n,n,n,n;..." string: one row per bucket, THROUGHPUT order."""
    series = read_model_pb2.ThroughputSeries(
        window=Duration(seconds=window_s), bucket_width=Duration(seconds=width_s)
    )
    for offset, row in enumerate(packed.split(";")):
        values = (int(value) for value in row.split(","))
        bucket = series.buckets.add(**dict(zip(THROUGHPUT, values, strict=True)))
        bucket.start_time.seconds = (first + offset) * width_s
    return series
