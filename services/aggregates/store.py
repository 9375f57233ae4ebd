"""Live aggregates in Redis: written by the metrics engine, read by the read model.

Events are applied by one Lua script (a run of events per call, one round trip per batch), so
each event's deduplication (its event id and idempotency key marked in its job's hash) and its
counter updates happen atomically: a redelivered or replayed event changes nothing.
Keys (all under PREFIX):
  job:<job_id>     hash: status, type, created_ms, ord_t, ord_s (the job's latest applied event),
                   and the markers of the job's applied events: e:<event_id>, and k:<idempotency
                   key> (an event's idempotency key names a change of its job), or j:<rest> for
                   a key "<job_id>/<rest>" (ours: the job id need not be stored again)
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
A job hash is kept until COMPLETED_JOB_TTL_S after its job completed, and without expiry in any
other status: a job's status must be known to move its count later, and RetryJob can re-queue a
failed, cancelled or dead-lettered job at any time. Markers in the job's hash, not a key per
event, make Redis's memory grow with jobs, not events, and bound it: completed jobs leave after a
day by default. A store written before kept a seen:<event_id> and a seen:key:<idempotency_key>
key per event, for a day: for a job hash from then (no marker, or `legacy` set) the script still
consults them.
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
from observatory.jobs.v1 import job_pb2
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
# How long a completed job's hash, and so the dedupe of its events, outlives its completion, by
# default (the metrics engine's METRICS_ENGINE_DEDUPE_WINDOW_S).
COMPLETED_JOB_TTL_S = 24 * 3600
# Latency is kept per minute: stats() sums the minutes overlapping the window (5 to 6 minutes).
LATENCY_BUCKET_TTL_S = LATENCY_WINDOW_MS // 1000 + 2 * 60
SECOND_BUCKET_TTL_S = 3600 + 60
MINUTE_BUCKET_TTL_S = 24 * 3600
__all__ = ["LATENCY_KINDS", "LATENCY_WINDOW_MS", "PREFIX", "Aggregates", "status_key"]

# Applies a run of events in order; returns one 0/1 per event (1: new). ARGV: prefix, job TTL,
# latency-histogram TTL, second-bucket TTL, minute-bucket TTL, histogram growth, the epoch to
# set if the store has none, the final status (whose job hash expires), then FIELDS values per
# event. The bucket index is histogram.bucket_of's formula.
# The call is atomic, so its writes are gathered first and made once at the end (the same end
# state, far fewer commands): each touched job hash is read once and written once, with its
# new event markers (later events of a job see the earlier ones through `jobs`), and each
# counter gets one HINCRBY/INCRBY of its summed delta (none if it nets to 0: readers take a
# missing field as 0) and each expiring key one EXPIRE.
_APPLY = """
local p = ARGV[1]
local job_ttl, lat_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local sec_ttl, min_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local log_growth = math.log(tonumber(ARGV[6]))
local final = ARGV[8]
local jobs, job_keys = {}, {}  -- job key -> {status, ..., fields (the hash), new markers, flags}
local counters, counter_keys = {}, {}  -- key -> {ttl, n (INCRBY), fields, delta by field}
local new_types, type_list = {}, {}
local function add(key, field, n, key_ttl)
  local c = counters[key]
  if not c then
    c = {ttl = key_ttl, n = 0, fields = {}, delta = {}}
    counters[key] = c
    counter_keys[#counter_keys + 1] = key
  end
  if field == nil then
    c.n = c.n + n
  elseif c.delta[field] == nil then
    c.fields[#c.fields + 1] = field
    c.delta[field] = n
  else
    c.delta[field] = c.delta[field] + n
  end
end
local function job(jk)
  local j = jobs[jk]
  if not j then
    local cur, h, marked = redis.call('HGETALL', jk), {}, false
    for i = 1, #cur, 2 do
      h[cur[i]] = cur[i + 1]
      marked = marked or string.sub(cur[i], 2, 2) == ':'
    end
    j = {status = h.status, type = h.type, created_ms = tonumber(h.created_ms),
         ord_t = tonumber(h.ord_t), ord_s = tonumber(h.ord_s), fields = h, new_markers = {},
         legacy = h.legacy ~= nil or (#cur > 0 and not marked)}
    jobs[jk] = j
    job_keys[#job_keys + 1] = jk
  end
  return j
end
-- Marks an event id or idempotency key in its job's hash; false if it was marked already (or,
-- in a store written before the markers moved there, has its former seen-key).
local function first_time(j, field, former_key)
  if j.fields[field] then return false end
  if j.legacy and redis.call('EXISTS', p .. former_key) == 1 then return false end
  j.fields[field] = '1'
  j.new_markers[#j.new_markers + 1] = field
  return true
end
local minute_keys = {}  -- epoch minute -> its keys (built once per call, not per event)
local function keys_of(minute)
  local k = minute_keys[minute]
  if not k then
    k = {gen = p .. 'gen:' .. minute, tp = p .. 'tp:m:' .. minute,
         queue_wait = p .. 'lat:queue_wait:m:' .. minute, run = p .. 'lat:run:m:' .. minute,
         end_to_end = p .. 'lat:end_to_end:m:' .. minute}
    minute_keys[minute] = k
  end
  return k
end
local function sample(key, value)
  local ms = tonumber(value)
  local bucket = 0
  if ms > 0 then bucket = math.ceil(math.log(ms + 1) / log_growth) end
  add(key, bucket, 1, lat_ttl)
end
local function apply(a)
  local eid, ikey = ARGV[a], ARGV[a + 1]
  local jid = ARGV[a + 2]
  local j = job(p .. 'job:' .. jid)
  if not first_time(j, 'e:' .. eid, 'seen:' .. eid) then return 0 end
  if ikey ~= '' then
    local own, marker = jid .. '/', 'k:' .. ikey
    if string.sub(ikey, 1, #own) == own then  -- a key naming its own job: kept without the id
      marker = 'j:' .. string.sub(ikey, #own + 1)
    end
    if not first_time(j, marker, 'seen:key:' .. ikey) then return 0 end
  end
  local occ, seq = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local mk = keys_of(math.floor(occ / 60000))
  add(mk.gen, nil, 1, min_ttl)
  local new_status, job_type = ARGV[a + 3], ARGV[a + 4]
  if job_type ~= '' and not j.type then
    -- the type arrives with job.created, possibly after later events of the job
    j.type, j.created_ms, j.type_dirty = job_type, occ, true
    if not new_types[job_type] then
      new_types[job_type] = true
      type_list[#type_list + 1] = job_type
    end
    if j.status then add(p .. 'type:' .. job_type, j.status, 1) end
  end
  if (not j.ord_t) or occ > j.ord_t or (occ == j.ord_t and seq > j.ord_s) then
    if j.status ~= new_status then
      if j.status then
        add(p .. 'status', j.status, -1)
        if j.type then add(p .. 'type:' .. j.type, j.status, -1) end
      end
      add(p .. 'status', new_status, 1)
      if j.type then add(p .. 'type:' .. j.type, new_status, 1) end
    end
    j.status, j.ord_t, j.ord_s, j.status_dirty = new_status, occ, seq, true
  end
  add(p .. 'totals', ARGV[a + 7], 1)
  local tp = ARGV[a + 8]
  if tp ~= '' then
    add(p .. 'tp:s:' .. math.floor(occ / 1000), tp, 1, sec_ttl)
    add(mk.tp, tp, 1, min_ttl)
  end
  if ARGV[a + 9] ~= '' then sample(mk.queue_wait, ARGV[a + 9]) end
  if ARGV[a + 10] ~= '' then sample(mk.run, ARGV[a + 10]) end
  if ARGV[a + 11] == '1' and j.created_ms then sample(mk.end_to_end, occ - j.created_ms) end
  return 1
end
if redis.call('EXISTS', p .. 'epoch') == 0 then redis.call('SET', p .. 'epoch', ARGV[7]) end
local applied, new = {}, 0
for a = 9, #ARGV, 12 do
  applied[#applied + 1] = apply(a)
  new = new + applied[#applied]
end
for _, jk in ipairs(job_keys) do
  local j = jobs[jk]
  local set = j.type_dirty and {'type', j.type, 'created_ms', j.created_ms} or {}
  if j.status_dirty then
    for _, v in ipairs({'status', j.status, 'ord_t', j.ord_t, 'ord_s', j.ord_s}) do
      set[#set + 1] = v
    end
  end
  if j.legacy and not j.fields.legacy then  -- still known as legacy once it has markers
    set[#set + 1] = 'legacy'
    set[#set + 1] = 1
  end
  for _, field in ipairs(j.new_markers) do
    set[#set + 1] = field
    set[#set + 1] = 1
  end
  if #set > 0 then redis.call('HSET', jk, unpack(set)) end
  if j.status_dirty and j.status == final then redis.call('EXPIRE', jk, job_ttl) end
end
if #type_list > 0 then redis.call('SADD', p .. 'types', unpack(type_list)) end
for _, key in ipairs(counter_keys) do
  local c = counters[key]
  if c.n ~= 0 then redis.call('INCRBY', key, c.n) end
  for _, field in ipairs(c.fields) do
    if c.delta[field] ~= 0 then redis.call('HINCRBY', key, field, c.delta[field]) end
  end
  if c.ttl then redis.call('EXPIRE', key, c.ttl) end
end
if new > 0 then redis.call('INCRBY', p .. 'version', new) end
return applied
"""
FIELDS = 12  # values per event in _APPLY's ARGV

# Bounds how long one script call holds Redis (other clients wait meanwhile): ~1.5 ms on this
# 2-core box. Larger calls save little now: what is left per event (its job hash and marker)
# does not shrink with the call, and the summed counter writes are under one command per event
# already (measured: 200 per call, ~4 % less Redis CPU per event for ~1.6x the hold time).
EVENTS_PER_CALL = 100

# status_key of every status, looked up once per event instead of formatted (unknown: formatted).
_STATUS_KEYS = {status: status_key(status) for status in job_pb2.JobStatus.values()}
# Only a completed job's hash expires: RetryJob can re-queue a failed, cancelled or dead-lettered
# job at any time, and moving its count needs its status.
_FINAL_STATUS_KEY = _STATUS_KEYS[job_pb2.JOB_STATUS_COMPLETED]


def event_args(f: EventFacts) -> list[str | int]:
    """One event's FIELDS values for _APPLY."""
    queue_wait_ms, run_ms = f.queue_wait_ms, f.run_ms
    return [
        f.event_id,
        f.idempotency_key,
        f.job_id,
        _STATUS_KEYS.get(f.status) or status_key(f.status),
        f.job_type,
        f.occurred_ms,
        f.sequence,
        f.totals_field,
        f.throughput_field,
        "" if queue_wait_ms is None else str(queue_wait_ms),
        "" if run_ms is None else str(run_ms),
        "1" if f.terminal else "0",
    ]


class Aggregates:
    """The aggregate store over one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = PREFIX,
        *,
        completed_job_ttl_s: int = COMPLETED_JOB_TTL_S,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._completed_job_ttl_s = completed_job_ttl_s
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
                self._completed_job_ttl_s,
                LATENCY_BUCKET_TTL_S,
                SECOND_BUCKET_TTL_S,
                MINUTE_BUCKET_TTL_S,
                repr(GROWTH),
                self._epoch,
                _FINAL_STATUS_KEY,
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
