"""Drives the observatory: submits no-op jobs through the gateway and watches them finish in the
read model. Completion and stats freshness come from polling GetStats; job-detail freshness from
polling GetJobDetail for a sample of jobs; submit->terminal latency from the job records."""

from __future__ import annotations

import bisect
import functools
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from observatory.events.v1 import event_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2, read_model_pb2_grpc

from services.common import postgres, rabbitmq_management, topology
from tools.bench import cpu, stats, timeline
from tools.testing.servers.rabbitmq import RabbitMQInfo

JOB_TYPE = "noop"
BATCH_SIZE = 500  # the gateway's SubmitJobs limit
BATCH_CLIENTS = 2
SINGLE_CLIENTS = 8
STATS_POLL_SECONDS = 0.02
DETAIL_POLL_SECONDS = 0.02
DETAIL_POLL_SHARE = 0.05  # of the oldest sample's wait: the tick once that is longer
# Jobs whose detail freshness a run samples: 1 % of them, 10 to 50. A sample costs a few
# GetJobDetail calls (~2 ms of CPU each, read model, PostgreSQL and MongoDB): 50 of them in a
# 1,000-job run cost ~10 % of the run's CPU, the bench weighing on what it measures.
DETAIL_SAMPLE_SHARE = 0.01
DETAIL_SAMPLES = (10, 50)
RPC_TIMEOUT = 60.0
TERMINAL = (
    job_pb2.JOB_STATUS_COMPLETED,
    job_pb2.JOB_STATUS_FAILED,
    job_pb2.JOB_STATUS_CANCELLED,
    job_pb2.JOB_STATUS_DEAD_LETTERED,
)
TERMINAL_EVENTS = (
    event_pb2.EVENT_TYPE_JOB_COMPLETED,
    event_pb2.EVENT_TYPE_JOB_FAILED,
    event_pb2.EVENT_TYPE_JOB_CANCELLED,
    event_pb2.EVENT_TYPE_JOB_DEAD_LETTERED,
)


class BenchError(RuntimeError):
    """A run could not finish: which run and why."""


@dataclass
class Clients:
    gateway: gateway_pb2_grpc.JobServiceStub
    read_model: read_model_pb2_grpc.ReadModelServiceStub
    postgres_dsn: str
    broker: RabbitMQInfo  # for the metrics engine's queue depths


@dataclass
class Submitted:
    """The jobs accepted so far; every `sample_every`-th goes to `sample` as soon as accepted."""

    sample: Callable[[str], None]
    sample_every: int
    job_ids: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # wall clock when each job's RPC was sent
    refused: int = 0  # open loop: jobs whose submit failed or went past the RPC deadline
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, jobs: int) -> None:
        with self.lock:
            self.refused += jobs

    def add(self, ids: Sequence[str], sent_at: float) -> None:
        with self.lock:
            first = len(self.job_ids)
            self.job_ids.extend(ids)
            self.sent_at.extend([sent_at] * len(ids))
        for index, job_id in enumerate(ids, start=first):
            if index % self.sample_every == 0:
                self.sample(job_id)


@dataclass(frozen=True)
class RunResult(stats.Throughput):
    latency_s: list[float]  # submit -> terminal, per job
    stats_freshness_s: list[float]
    detail_freshness_s: list[float]
    failed_jobs: int
    refused_submits: int = 0
    # First submit -> the last job terminal in PostgreSQL, which the read model's job queries
    # (ListJobs, GetJob) read: done, before the event path (stats, timelines) catches up.
    records_seconds: float = math.nan
    # CPU seconds per process from the first submit until the last job's terminal event was in
    # the stats and in its timeline (the event store): the run's work, without the wait for a
    # quiet stack before it (the earlier run's tail), and with its own tail.
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def records_rate(self) -> float:
        return stats.rate(self.jobs, self.records_seconds)


def detail_sample_every(jobs: int) -> int:
    """Every how many accepted jobs one is sampled for detail freshness."""
    low, high = DETAIL_SAMPLES
    samples = min(high, max(low, round(jobs * DETAIL_SAMPLE_SHARE)))
    return max(1, jobs // samples)


def _spec() -> job_pb2.JobSpec:
    return job_pb2.JobSpec(type=JOB_TYPE)


def terminal_count(read_model: read_model_pb2_grpc.ReadModelServiceStub) -> int:
    response = read_model.GetStats(read_model_pb2.GetStatsRequest(), timeout=RPC_TIMEOUT)
    return sum(c.count for c in response.stats.by_status if c.status in TERMINAL)


class StatsPoller:
    """Polls GetStats in a thread, recording (received_at, terminal jobs since the start)."""

    def __init__(self, read_model: read_model_pb2_grpc.ReadModelServiceStub) -> None:
        self._read_model = read_model
        self.baseline = terminal_count(read_model)
        self.polls: list[tuple[float, int]] = []
        self.errors = 0
        self._target: int | None = None
        self._stop = threading.Event()
        self.reached = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def expect(self, jobs: int) -> None:
        self._target = jobs

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seen = terminal_count(self._read_model) - self.baseline
            except grpc.RpcError:
                self.errors += 1  # a slow or restarting read model; the deadline decides
                self._stop.wait(STATS_POLL_SECONDS)
                continue
            self.polls.append((time.time(), seen))
            if self._target is not None and seen >= self._target:
                self.reached.set()
                return
            self._stop.wait(STATS_POLL_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class DetailSampler:
    """Polls GetJobDetail for sampled jobs until each shows its terminal event; records how long
    after the event's occurred_at that was.

    Jobs finish roughly in submission order, so each tick polls the oldest unresolved sample,
    and the next one at once while they are visible: one unanswered poll per tick. Ticks are
    DETAIL_POLL_SECONDS apart, or DETAIL_POLL_SHARE of how long the oldest sample has waited
    if that is longer: a GetJobDetail costs ~2 ms of CPU (read model, PostgreSQL, MongoDB),
    so polling a lagging timeline often would take the box from the system it measures. A
    sample is seen at the first poll after it became visible: freshness is overestimated, by at
    most one tick, never flattered."""

    def __init__(self, read_model: read_model_pb2_grpc.ReadModelServiceStub) -> None:
        self._read_model = read_model
        self._pending: list[tuple[str, float]] = []  # (job id, accepted at), oldest first
        self._lock = threading.Lock()
        self.freshness: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detail-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, job_id: str, accepted_at: float | None = None) -> None:
        """`accepted_at`: time.monotonic() when the job was accepted (default: now)."""
        with self._lock:
            self._pending.append((job_id, time.monotonic() if accepted_at is None else accepted_at))

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _visible_terminal(self, job_id: str) -> float | None:
        detail = self._read_model.GetJobDetail(
            read_model_pb2.GetJobDetailRequest(job_id=job_id), timeout=RPC_TIMEOUT
        )
        for event in detail.events:
            if event.event_type in TERMINAL_EVENTS:
                return event.occurred_at.ToNanoseconds() / 1e9
        return None

    def _oldest(self) -> tuple[str, float] | None:
        with self._lock:
            return self._pending[0] if self._pending else None

    def tick(self) -> float:
        """Resolves the oldest samples while they are visible; the seconds until the next tick."""
        while (oldest := self._oldest()) is not None:
            try:
                occurred = self._visible_terminal(oldest[0])
            except grpc.RpcError:
                break
            if occurred is None:
                break
            self.freshness.append(max(0.0, time.time() - occurred))
            with self._lock:
                self._pending.remove(oldest)
        waited = time.monotonic() - oldest[1] if oldest else 0.0
        return max(DETAIL_POLL_SECONDS, waited * DETAIL_POLL_SHARE)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.tick())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def submit_batches(clients: Clients, jobs: int, submitted: Submitted) -> None:
    """SubmitJobs in batches of 500 from BATCH_CLIENTS concurrent clients."""
    sizes = [min(BATCH_SIZE, jobs - start) for start in range(0, jobs, BATCH_SIZE)]

    def send(size: int) -> None:
        request = gateway_pb2.SubmitJobsRequest(specs=[_spec() for _ in range(size)])
        sent_at = time.time()
        response = clients.gateway.SubmitJobs(request, timeout=RPC_TIMEOUT)
        submitted.add([r.job_id for r in response.results], sent_at)

    with ThreadPoolExecutor(BATCH_CLIENTS, thread_name_prefix="batch") as pool:
        list(pool.map(send, sizes))


def submit_singles(clients: Clients, jobs: int, submitted: Submitted) -> None:
    """SubmitJob one job per call from SINGLE_CLIENTS concurrent clients."""
    request = gateway_pb2.SubmitJobRequest(spec=_spec())

    def send(count: int) -> None:
        for _ in range(count):
            sent_at = time.time()
            response = clients.gateway.SubmitJob(request, timeout=RPC_TIMEOUT)
            submitted.add([response.job_id], sent_at)

    shares = [jobs // SINGLE_CLIENTS + (i < jobs % SINGLE_CLIENTS) for i in range(SINGLE_CLIENTS)]
    with ThreadPoolExecutor(SINGLE_CLIENTS, thread_name_prefix="single") as pool:
        list(pool.map(send, [s for s in shares if s]))


def submit_at_rate(rate: float, window_s: float = 0.0) -> Callable[[Clients, int, Submitted], None]:
    """Open loop: job i arrives at start + i / rate whatever the responses, and its latency is
    counted from that arrival, so a slow system cannot slow the offered load down.

    window_s = 0: each job is sent alone (SubmitJob) when it arrives. window_s > 0: a client
    that batches, as a busy producer would: every window_s it sends the jobs that arrived since
    its last send in one SubmitJobs call (not waiting for earlier calls); the time a job waits
    for its window counts in its latency."""

    def submit(clients: Clients, jobs: int, submitted: Submitted) -> None:
        start = time.time()
        arrivals = [start + i / rate for i in range(jobs)]
        answered = threading.Semaphore(0)

        # Recorded as each answer comes (not after the last send): the detail sampler starts
        # polling a sampled job as soon as it is accepted.
        def on_answer(arrived: list[float], future: Any) -> None:
            try:
                response = future.result()
            except grpc.RpcError:  # overload: counted, not waited for
                submitted.refuse(len(arrived))
            else:
                ids = [r.job_id for r in response.results] if window_s else [response.job_id]
                for job_id, at in zip(ids, arrived, strict=True):
                    submitted.add([job_id], at)
            finally:
                answered.release()

        sent = calls = 0
        while sent < jobs:
            delay = arrivals[sent] + window_s - time.time()
            if delay > 0:
                time.sleep(delay)
            count = bisect.bisect_right(arrivals, time.time(), lo=sent) - sent if window_s else 1
            if window_s:
                batch = gateway_pb2.SubmitJobsRequest(specs=[_spec() for _ in range(count)])
                call: Any = clients.gateway.SubmitJobs.future(batch, timeout=RPC_TIMEOUT)
            else:
                single = gateway_pb2.SubmitJobRequest(spec=_spec())
                call = clients.gateway.SubmitJob.future(single, timeout=RPC_TIMEOUT)
            call.add_done_callback(functools.partial(on_answer, arrivals[sent : sent + count]))
            sent += count
            calls += 1
        for _ in range(calls):
            answered.acquire()

    return submit


def finished_times(dsn: str, job_ids: Sequence[str]) -> tuple[dict[str, float], int]:
    """job id -> finished_at (epoch seconds) from the system of record, and how many failed."""
    with postgres.connect(dsn, autocommit=True, application_name="bench") as conn:
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM finished_at)::float8, status FROM jobs"
            " WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL",
            (list(job_ids),),
        ).fetchall()
    return {row[0]: row[1] for row in rows}, sum(1 for row in rows if row[2] != "completed")


_UNFINISHED = "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running', 'retry_scheduled')"
# Queue counts on the management API lag the broker by its statistics interval (1 s in the stack).
QUEUE_STATS_LAG_SECONDS = 1.0


def wait_idle(dsn: str, broker: RabbitMQInfo, timeout: float) -> int:
    """Waits until no job is pending, running or scheduled for retry (what an earlier, failed run
    left behind would otherwise finish during the next run and be counted as its jobs), and the
    metrics engine holds no event, ready or being stored (an event store still catching up on the
    last run would take CPU from the next one, ours or a baseline's). Returns how many jobs were
    still unfinished at the deadline (0: idle)."""
    deadline = time.monotonic() + timeout
    with postgres.connect(dsn, autocommit=True, application_name="bench") as conn:
        while True:
            row = conn.execute(_UNFINISHED).fetchone()
            busy = int(row[0]) if row else 0
            if busy == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    time.sleep(QUEUE_STATS_LAG_SECONDS)  # so the counts below include the last events published
    auth = (broker.username, broker.password)
    while time.monotonic() < deadline and any(
        rabbitmq_management.queue(broker.management_url, queue, auth=auth).messages
        for queue in topology.METRICS_ENGINE_QUEUES
    ):
        time.sleep(0.2)
    return busy


def run(
    clients: Clients,
    mode: str,
    jobs: int,
    submit: Callable[[Clients, int, Submitted], None],
    timeout: float,
    *,
    cpu_roots: Mapping[str, int] | None = None,
) -> RunResult:
    """One measured run: submit `jobs` jobs, wait until the read model counts them all terminal
    and the sampled jobs' timelines (the last job's among them) show their terminal events.
    `cpu_roots`: name -> pid of the processes whose CPU the run is to measure."""
    leftover = wait_idle(clients.postgres_dsn, clients.broker, timeout)
    if leftover:
        raise BenchError(f"{mode} {jobs}: {leftover} earlier jobs still unfinished, not started")
    poller = StatsPoller(clients.read_model)
    sampler = DetailSampler(clients.read_model)
    submitted = Submitted(sampler.add, sample_every=detail_sample_every(jobs))
    poller.expect(jobs)
    poller.start()
    sampler.start()
    cpu_before = cpu.cpu_seconds(cpu_roots or {})
    first_sent = time.time()
    submit(clients, jobs, submitted)
    submit_seconds = time.time() - first_sent
    if submitted.job_ids and (len(submitted.job_ids) - 1) % submitted.sample_every:
        sampler.add(submitted.job_ids[-1])  # its timeline done: the event store has caught up
    poller.expect(len(submitted.job_ids))  # the accepted ones (an open loop may lose some)
    reached = poller.reached.wait(timeout)
    poller.stop()
    deadline = time.time() + 30
    while sampler.pending() and time.time() < deadline:
        time.sleep(0.05)
    sampler.stop()
    cpu_spent = cpu.delta(cpu_before, cpu.cpu_seconds(cpu_roots or {}))
    if not reached:
        seen = poller.polls[-1][1] if poller.polls else 0
        raise BenchError(f"{mode} {jobs}: only {seen} jobs terminal after {timeout:.0f} s")
    done = timeline.first_reaching(poller.polls, len(submitted.job_ids))
    assert done is not None  # reached implies a poll counted them all
    finished, failed = finished_times(clients.postgres_dsn, submitted.job_ids)
    last_finished = max(finished.values(), default=math.nan)
    latency = [
        finished[job_id] - sent_at
        for job_id, sent_at in zip(submitted.job_ids, submitted.sent_at, strict=True)
        if job_id in finished
    ]
    return RunResult(
        mode=mode,
        jobs=jobs,
        submit_seconds=submit_seconds,
        end_to_end_seconds=done - first_sent,
        records_seconds=last_finished - first_sent,
        latency_s=latency,
        stats_freshness_s=timeline.stats_freshness(list(finished.values()), poller.polls),
        detail_freshness_s=sampler.freshness,
        failed_jobs=failed,
        refused_submits=submitted.refused,
        cpu_seconds=cpu_spent,
    )


def query_latency(clients: Clients, calls: int) -> dict[str, list[float]]:
    """Seconds per call of the read model's three typical queries, `calls` of each."""
    page = read_model_pb2.ListJobsRequest(
        statuses=[job_pb2.JOB_STATUS_COMPLETED], types=[JOB_TYPE], page_size=50
    )
    first = clients.read_model.ListJobs(page, timeout=RPC_TIMEOUT)
    ids = [job.id for job in first.jobs] or [""]
    rng = random.Random(7)
    queries: dict[str, Callable[[], object]] = {
        "stats": lambda: clients.read_model.GetStats(
            read_model_pb2.GetStatsRequest(), timeout=RPC_TIMEOUT
        ),
        "job_page": lambda: clients.read_model.ListJobs(page, timeout=RPC_TIMEOUT),
        "job_detail": lambda: clients.read_model.GetJobDetail(
            read_model_pb2.GetJobDetailRequest(job_id=rng.choice(ids)), timeout=RPC_TIMEOUT
        ),
    }
    out: dict[str, list[float]] = {}
    for name, call in queries.items():
        call()  # warm the connection
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            call()
            samples.append(time.perf_counter() - began)
        out[name] = samples
    return out


def connect(
    gateway_target: str, read_model_target: str, postgres_dsn: str, broker: RabbitMQInfo
) -> Clients:
    gateway = grpc.insecure_channel(gateway_target)
    read_model = grpc.insecure_channel(read_model_target)
    return Clients(
        gateway_pb2_grpc.JobServiceStub(gateway),
        read_model_pb2_grpc.ReadModelServiceStub(read_model),
        postgres_dsn,
        broker,
    )
