"""The read side of the aggregates: stats() snapshots that re-read only what changed.

Every write to a time bucket (throughput per second / per minute, latency per minute) happens in
store.py's apply script together with `INCR gen:<minute of the event>` and `INCRBY version`, so
a minute whose generation is unchanged has unchanged data, whether it is the current minute or
a past one (a late event landing in a past minute bumps that minute's generation like any
other). One script call (_READ) compares the generations the reader holds with Redis and sends
back only the minutes that changed, the seconds of the per-second window that are new or
changed (compared by their sums: their counters only grow), and the status/type counts only
when `version` moved. An `epoch` marker (set by the first write after
the store was created or flushed) makes a reader drop everything it holds when the store was
replaced, so equal counters of a different store are never mistaken for unchanged data.

Freshness: none is traded. Each stats() call is answered from a _READ that started after the
call did (concurrent callers share one such read: see SnapshotReader.stats), and _READ is one
atomic script, so an event applied before the call is in the answer and the parts reused from
the previous read are exactly what Redis holds. Staleness bound: 0 (plus the call's own time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import Generic, TypeVar

import redis
from google.protobuf.duration_pb2 import Duration
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2

from services.aggregates.facts import THROUGHPUT
from services.aggregates.histogram import PERCENTILES, percentiles_of_sum

LATENCY_WINDOW_MS = 5 * 60 * 1000
LATENCY_KINDS = ("queue_wait", "run", "end_to_end")
MINUTES = 60  # the per-minute series: the last hour
SECONDS = 60  # the per-second series: the last minute

# ARGV: prefix, now (epoch s), now (epoch min), first latency minute, epoch held, version held,
# the generation held for each of the MINUTES minutes up to now as "g,g,..." (oldest first;
# "-" = none), the per-second rows held for the SECONDS seconds up to now as their sums "n,n,..."
# ("-" = none; a row's counters only grow, so an equal sum is an unchanged row), then the
# THROUGHPUT fields. Returns: epoch, version, counts or false ("status=n,...", the sorted types,
# each type's "status=n,..."), the changed minutes as {minute, generation, "n,n,n,n",
# queue-wait, run, end-to-end histograms "index:count,..."}, and the changed seconds as
# "offset:n,n,n,n;...". A second is only looked at when its minute changed or it is new.
# Values are packed into strings: parsing thousands of RESP replies costs more than the reads.
_READ = """
local p = ARGV[1]
local now_s, now_min, lat_from = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local epoch = redis.call('GET', p .. 'epoch') or ''
local version = redis.call('GET', p .. 'version') or '0'
local fresh = epoch ~= ARGV[5]
local function split(packed)
  local out = {}
  for value in string.gmatch(packed, '[^,]+') do out[#out + 1] = value end
  return out
end
local held_gens, held_sums = split(ARGV[7]), split(ARGV[8])
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
local minutes = #held_gens
local first = now_min - minutes + 1
local gen_keys = {}
for i = 1, minutes do gen_keys[i] = p .. 'gen:' .. (first + i - 1) end
local gens = redis.call('MGET', unpack(gen_keys))
local function row(key)
  local values = redis.call('HMGET', key, unpack(fields))
  local sum = 0
  for i = 1, #values do
    values[i] = values[i] or '0'
    sum = sum + tonumber(values[i])
  end
  return table.concat(values, ','), sum
end
local function pack(flat, sep)
  local parts = {}
  for i = 1, #flat, 2 do parts[#parts + 1] = flat[i] .. sep .. flat[i + 1] end
  return table.concat(parts, ',')
end
local function histogram(kind, minute)
  if minute < lat_from then return '' end
  return pack(redis.call('HGETALL', p .. 'lat:' .. kind .. ':m:' .. minute), ':')
end
local counts = false
if fresh or version ~= ARGV[6] then
  local types = redis.call('SMEMBERS', p .. 'types')
  table.sort(types)
  local type_counts = {}
  for i, t in ipairs(types) do
    type_counts[i] = pack(redis.call('HGETALL', p .. 'type:' .. t), '=')
  end
  counts = {pack(redis.call('HGETALL', p .. 'status'), '='), types, type_counts}
end
local changed, unchanged = {}, {}
for i = 1, minutes do
  local minute = first + i - 1
  gens[i] = gens[i] or '0'
  unchanged[i] = not fresh and gens[i] == held_gens[i]
  if not unchanged[i] then
    changed[#changed + 1] = {
      tostring(minute), gens[i], (row(p .. 'tp:m:' .. minute)), histogram('queue_wait', minute),
      histogram('run', minute), histogram('end_to_end', minute),
    }
  end
end
local seconds = {}
local first_s = now_s - #held_sums + 1
for i = 1, #held_sums do
  local t = first_s + i - 1
  local m = math.floor(t / 60) - first + 1
  if held_sums[i] == '-' or not unchanged[m] then
    local values, sum = row(p .. 'tp:s:' .. t)
    if fresh or tostring(sum) ~= held_sums[i] then
      seconds[#seconds + 1] = (i - 1) .. ':' .. values
    end
  end
end
return {epoch, version, counts, changed, table.concat(seconds, ';')}
"""

Row = tuple[int, ...]  # one bucket's THROUGHPUT counts
_ZERO: Row = tuple(0 for _ in THROUGHPUT)


@dataclass
class _Minute:
    gen: str
    row: Row
    latency: tuple[dict[int, int], ...]  # per LATENCY_KINDS: bucket index -> samples
    latency_read: bool  # False: read while outside the latency window (histograms not read)


@dataclass
class _Held:
    """What the reader holds from earlier reads (all of it from one store: `epoch`)."""

    epoch: str = "unread"  # never a stored epoch (hex): the first read loads everything
    version: str = ""
    by_status: list[read_model_pb2.StatusCount] = field(default_factory=list)
    by_type: list[read_model_pb2.TypeStats] = field(default_factory=list)
    minutes: dict[int, _Minute] = field(default_factory=dict)
    seconds: dict[int, Row] = field(default_factory=dict)  # epoch second -> its row
    second_sums: dict[int, str] = field(default_factory=dict)  # epoch second -> sum(row)


class SnapshotReader:
    """stats() over one Redis client; thread-safe (one read at a time, shared by waiters)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._read = client.register_script(_READ)
        self._held = _Held()
        self._lock = threading.Lock()  # guards _held: one read-and-build at a time
        self._flights = _SingleFlight[read_model_pb2.Stats]()
        self._per_second = _Series(SECONDS, 1)
        self._per_minute = _Series(MINUTES, 60)
        self._settled_key: tuple[tuple[int, str], ...] | None = None
        self._settled: tuple[list[int], ...] = ()
        self._last: tuple[int, read_model_pb2.Stats] | None = None  # (now_s, stats) last built

    def stats(self, now: datetime | None = None) -> read_model_pb2.Stats:
        """A snapshot read after this call started. Callers arriving while a read is running
        wait for the next one, which all of them share (not the running one: it may have read
        Redis before their event was applied). The result is shared: do not modify it."""
        if now is not None:  # a chosen instant (tests): not shared with other callers
            return self._snapshot(now)
        return self._flights.run(lambda: self._snapshot(datetime.now(UTC)))

    def _snapshot(self, now: datetime) -> read_model_pb2.Stats:
        with self._lock:
            now_ms = int(now.timestamp() * 1000)
            now_s, now_min = now_ms // 1000, now_ms // 60000
            latency_from = (now_ms - LATENCY_WINDOW_MS) // 60000
            changed = self._refresh(now_s, now_min, latency_from)
            if not changed and self._last is not None and self._last[0] == now_s:
                stats = read_model_pb2.Stats()  # the same answer, checked at `now`
                stats.CopyFrom(self._last[1])
                stats.computed_at.FromDatetime(now)
            else:
                stats = self._build(now, now_s, now_min, latency_from)
            self._last = (now_s, stats)
            return stats

    def _refresh(self, now_s: int, now_min: int, latency_from: int) -> bool:
        """Reads what changed into _held; False when nothing did."""
        held = self._held
        window = range(now_min - MINUTES + 1, now_min + 1)
        # "-": not held, or held without the histograms it now needs (`now` went back in time)
        held_gens = ",".join(
            held.minutes[m].gen
            if m in held.minutes and (m < latency_from or held.minutes[m].latency_read)
            else "-"
            for m in window
        )
        first_s = now_s - SECONDS + 1
        sums = held.second_sums
        held_sums = ",".join([sums.get(t, "-") for t in range(first_s, now_s + 1)])
        args: list[str | int] = [self._prefix, now_s, now_min, latency_from, held.epoch]
        args += [held.version, held_gens, held_sums, *THROUGHPUT]
        epoch, version, counts, changed, seconds = self._read(args=args)

        if epoch != held.epoch:  # a new or replaced store: nothing held is valid
            held = self._held = _Held(epoch=epoch)
            self._settled_key = None
        if counts:
            status, types, type_counts = counts
            held.by_status = _status_counts(_unpacked(status))
            held.by_type = []
            for job_type, packed in zip(types, type_counts, strict=True):
                entry = read_model_pb2.TypeStats(
                    type=job_type, by_status=_status_counts(_unpacked(packed))
                )
                entry.total = sum(count.count for count in entry.by_status)
                held.by_type.append(entry)
        held.version = version
        for minute, gen, row, *latency in changed:
            held.minutes[int(minute)] = _Minute(
                gen, _row(row), tuple(map(_histogram, latency)), int(minute) >= latency_from
            )
        for part in filter(None, seconds.split(";")):
            offset, row = part.split(":")
            second, values = first_s + int(offset), _row(row)
            held.seconds[second], held.second_sums[second] = values, str(sum(values))
        # Forget what no window can need again (reads with an earlier `now` re-read it).
        for minute in [m for m in held.minutes if m < window.start]:
            del held.minutes[minute]
        for second in [t for t in held.seconds if t < first_s]:
            del held.seconds[second], held.second_sums[second]
        return bool(counts or changed or seconds)

    def _build(
        self, now: datetime, now_s: int, now_min: int, latency_from: int
    ) -> read_model_pb2.Stats:
        held = self._held
        stats = read_model_pb2.Stats(by_status=held.by_status, by_type=held.by_type)
        stats.computed_at.FromDatetime(now)
        stats.total_jobs = sum(count.count for count in held.by_status)
        second_rows = [held.seconds.get(t, _ZERO) for t in range(now_s - SECONDS + 1, now_s + 1)]
        minute_rows = [
            held.minutes[m].row if m in held.minutes else _ZERO
            for m in range(now_min - MINUTES + 1, now_min + 1)
        ]
        stats.throughput.append(self._per_second.update(now_s - SECONDS + 1, second_rows))
        stats.throughput.append(self._per_minute.update(now_min - MINUTES + 1, minute_rows))
        stats.latency_window.FromMilliseconds(LATENCY_WINDOW_MS)
        settled = self._settled_latency(range(latency_from, now_min))
        current = held.minutes.get(now_min)
        for index, kind in enumerate(LATENCY_KINDS):
            latest = current.latency[index] if current is not None else {}
            values, count = percentiles_of_sum(settled[index], latest)
            target = getattr(stats, kind)
            target.sample_count = count
            for percent, value in zip(PERCENTILES, values, strict=True):
                getattr(target, f"p{percent}").FromMilliseconds(value)
        return stats

    def _settled_latency(self, minutes: range) -> tuple[list[int], ...]:
        """Per kind, the histograms of `minutes` (the window before the current minute) summed,
        as running totals by bucket index; kept until a generation in it changes or the window
        moves."""
        held = self._held.minutes
        key = tuple((m, held[m].gen) for m in minutes if m in held)
        if key != self._settled_key:
            parts = [held[m] for m, _gen in key]
            self._settled = tuple(
                list(accumulate(_dense(part.latency[index] for part in parts)))
                for index in range(len(LATENCY_KINDS))
            )
            self._settled_key = key
        return self._settled


class _Series:
    """One throughput series kept built between reads (rebuilding 60 buckets costs more than
    the rest of a read): a moved window drops and adds buckets at the ends, changed rows are
    set in place. Callers get copies (Stats.throughput.append copies)."""

    def __init__(self, size: int, width_s: int) -> None:
        self._size, self._width_s = size, width_s
        self._first = 0
        self._rows: list[Row] = []
        self._series = read_model_pb2.ThroughputSeries(
            window=Duration(seconds=size * width_s), bucket_width=Duration(seconds=width_s)
        )

    def update(self, first: int, rows: Sequence[Row]) -> read_model_pb2.ThroughputSeries:
        buckets = self._series.buckets
        shift = first - self._first
        if self._rows and 0 <= shift < self._size:
            del buckets[:shift]
            del self._rows[:shift]
        else:
            del buckets[:]
            self._rows = []
        for offset in range(len(self._rows), self._size):
            bucket = buckets.add()
            bucket.start_time.seconds = (first + offset) * self._width_s
            self._rows.append(_ZERO)
        for offset, (old, new) in enumerate(zip(self._rows, rows, strict=True)):
            if old != new:
                bucket = buckets[offset]
                for name, value in zip(THROUGHPUT, new, strict=True):
                    setattr(bucket, name, value)
        self._first, self._rows = first, list(rows)
        return self._series


def status_key(status: job_pb2.JobStatus.ValueType) -> str:
    """The field name of a status in the count hashes ("completed")."""
    return job_pb2.JobStatus.Name(status).removeprefix("JOB_STATUS_").lower()


_STATUSES = [
    (status, status_key(status))
    for status in job_pb2.JobStatus.values()
    if status != job_pb2.JOB_STATUS_UNSPECIFIED
]


def _status_counts(raw: dict[str, str]) -> list[read_model_pb2.StatusCount]:
    return [
        read_model_pb2.StatusCount(status=status, count=int(raw.get(key, 0)))
        for status, key in _STATUSES
    ]


def _unpacked(packed: str) -> dict[str, str]:
    """A hash from _READ's "field=value,..." string."""
    return dict(pair.split("=", 1) for pair in filter(None, packed.split(",")))


def _row(packed: str) -> Row:
    return tuple(int(value) for value in packed.split(","))


def _histogram(packed: str) -> dict[int, int]:
    """Bucket index -> count from _READ's "index:count,..." string."""
    if not packed:
        return {}
    numbers = list(map(int, packed.replace(":", ",").split(",")))
    return dict(zip(numbers[::2], numbers[1::2], strict=True))


def _dense(histograms: Iterable[dict[int, int]]) -> list[int]:
    """The sum of histograms as counts[index]."""
    total: list[int] = []
    for histogram in histograms:
        if histogram:
            total.extend([0] * (max(histogram) + 1 - len(total)))
            for index, count in histogram.items():
                total[index] += count
    return total


T = TypeVar("T")


class _SingleFlight(Generic[T]):
    """Runs a computation for many callers: a caller gets the result of a run that started
    after it arrived (so it reflects everything done before the call), shared with every
    caller that arrived before that run started; a failed run raises in all of them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._started = 0  # runs started so far; run n is the n-th
        self._running = False
        self._finished = 0  # the number of the last finished run
        self._outcome: T | BaseException | None = None

    def run(self, compute: Callable[[], T]) -> T:
        with self._changed:
            needed = self._started + 1  # the first run that starts after this call
            while self._finished < needed:
                if not self._running:
                    self._running = True
                    self._started += 1
                    break
                self._changed.wait()
            else:
                return self._result()
            mine = self._started
        outcome: T | BaseException
        try:
            outcome = compute()
        except BaseException as error:  # handed to the waiters too, then raised here
            outcome = error
        with self._changed:
            self._running = False
            self._finished, self._outcome = mine, outcome
            self._changed.notify_all()
            return self._result()

    def _result(self) -> T:
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]
