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
  gen:<epoch min>  events applied that occurred in that minute: bumped with every write to the
                   minute's tp:s, tp:m and lat keys, so readers re-read only changed minutes
  version          events applied in all; epoch: a random id set by the first write to an
                   empty store (readers drop what they hold when it changes) - see snapshot.py
Job hashes are kept without expiry: a job's status must be known to move its count later.
stats() (snapshot.py) reads at most a fixed number of keys (its cost does not grow with the
event rate): counts, 120 throughput hashes and 3 x 6 latency histograms of at most a few hundred
fields each, and after the first call only the minutes whose generation changed.
Latency samples are counted after the event's dedupe check, like every other counter, so a
duplicate event adds no sample. (The former `lat:<kind>` sorted sets are no longer read or
written; an old local store can drop them: `DEL agg:lat:queue_wait agg:lat:run agg:lat:end_to_end`.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import redis
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import TOTALS, EventFacts
from services.aggregates.histogram import GROWTH
from services.aggregates.snapshot import (
    LATENCY_KINDS,
    LATENCY_WINDOW_MS,
    SnapshotReader,
    status_key,
)

PREFIX = "agg:"
SEEN_TTL_S = 24 * 3600
# Latency is kept per minute: stats() sums the minutes overlapping the window (5 to 6 minutes).
LATENCY_BUCKET_TTL_S = LATENCY_WINDOW_MS // 1000 + 2 * 60
SECOND_BUCKET_TTL_S = 3600 + 60
MINUTE_BUCKET_TTL_S = 24 * 3600
__all__ = ["LATENCY_KINDS", "LATENCY_WINDOW_MS", "PREFIX", "Aggregates", "status_key"]

# Applies a run of events in order; returns one 0/1 per event (1: new). ARGV: prefix, seen TTL,
# latency-histogram TTL, second-bucket TTL, minute-bucket TTL, histogram growth, the epoch to
# set if the store has none, then FIELDS values per event. The bucket index is
# histogram.bucket_of's formula.
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
  local gk = p .. 'gen:' .. math.floor(tonumber(ARGV[a + 5]) / 60000)
  redis.call('INCR', gk)
  redis.call('EXPIRE', gk, min_ttl)
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
if redis.call('EXISTS', p .. 'epoch') == 0 then redis.call('SET', p .. 'epoch', ARGV[7]) end
local applied, new = {}, 0
for a = 8, #ARGV, 12 do
  applied[#applied + 1] = apply(a)
  new = new + applied[#applied]
end
if new > 0 then redis.call('INCRBY', p .. 'version', new) end
return applied
"""
FIELDS = 12  # values per event in _APPLY's ARGV

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


class Aggregates:
    """The aggregate store over one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._apply = client.register_script(_APPLY)
        self._epoch = uuid.uuid4().hex  # this writer's id for an empty store (snapshot.py)
        self._snapshots = SnapshotReader(client, prefix)

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
                self._epoch,
            ]
            for facts in batch[start : start + EVENTS_PER_CALL]:
                args += event_args(facts)
            self._apply(args=args, client=pipe)
        return [bool(new) for chunk in pipe.execute() for new in chunk]

    def totals(self) -> dict[str, int]:
        raw = self._redis.hgetall(self._prefix + "totals")
        return {name: int(raw.get(name, 0)) for name in TOTALS}

    def stats(self, now: datetime | None = None) -> read_model_pb2.Stats:
        """A snapshot: counts, throughput (1m by second, 1h by minute), latency quantiles, read
        after the call started (see snapshot.py). Shared with concurrent callers: read-only."""
        return self._snapshots.stats(now)

    def ping(self) -> bool:
        return bool(self._redis.ping())
