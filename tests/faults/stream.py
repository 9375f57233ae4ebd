"""A stream of jobs submitted in the background, the way a careful client would.

Mostly gRPC `SubmitJobs` batches, with some single HTTP `POST /jobs`, every job with its own
idempotency key. An UNAVAILABLE / 503 (or a timeout, whose outcome is unknown) is retried with the
same keys until the gateway accepts: the same key always ends as one job. Every answer is
recorded with its time, so a test can say what the gateway answered during a fault.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2

# What a client may retry with the same idempotency keys: the gateway said "later", or the
# answer did not arrive in time (the job may or may not have been accepted).
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
RETRYABLE_HTTP = frozenset({503, 504})
CALL_TIMEOUT_S = 30.0
RETRY_PAUSE_S = 0.25


@dataclass(frozen=True)
class Answer:
    """One gateway answer: `kind` is "accepted", "unavailable" (retried) or "error"."""

    at: float  # time.monotonic() when it arrived
    kind: str
    transport: str  # "grpc" or "http"
    detail: str = ""
    took: float = 0.0  # seconds from the request to the answer


def accepted_after_refusal(answers: Sequence[Answer]) -> list[Answer]:
    """Acceptances of requests sent after the gateway's first refusal in `answers`.

    A broker outage is seen by the gateway on its next publish; the submits that committed
    before that are accepted (their messages wait in the outbox), but once it has refused one,
    it must accept nothing until the backend is back."""
    refusals = [a.at for a in answers if a.kind == "unavailable"]
    if not refusals:
        return []
    first = min(refusals)
    return [a for a in answers if a.kind == "accepted" and a.at - a.took >= first]


def job_spec(key: str, index: int) -> job_pb2.JobSpec:
    """Mostly `noop`; every 50th job a short `sleep`, so some attempts are mid-run at a fault."""
    spec = job_pb2.JobSpec(idempotency_key=key, max_attempts=5)
    if index % 50 == 0:
        spec.type = "sleep"
        spec.payload.update({"seconds": 0.02})
    else:
        spec.type = "noop"
    return spec


@dataclass
class JobStream:
    """Submits `total` jobs at about `rate` jobs/s from a background thread (`start`, `wait`)."""

    grpc_target: str
    http_url: str
    total: int = 5000
    rate: float = 250.0
    batch: int = 100
    http_singles_every: int = 10  # every Nth batch sends its first few jobs as single HTTP posts
    http_singles: int = 5
    name: str = "stream"
    give_up_after_s: float = 180.0
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    answers: list[Answer] = field(default_factory=list)
    duplicates: int = 0  # accepted answers saying "this key was already accepted"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _failure: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # ----- driving ---------------------------------------------------------------------------

    def start(self) -> JobStream:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> None:
        """Until every job is accepted; raises what went wrong in the thread, or on timeout."""
        assert self._thread is not None, "start() first"
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(CALL_TIMEOUT_S)
            raise AssertionError(
                f"{self.name}: only {self.accepted_count()} of {self.total} jobs accepted "
                f"after {timeout:g}s; last answers: {self.answers[-5:]}"
            )
        if self._failure is not None:
            raise AssertionError(f"{self.name} failed: {self._failure!r}") from self._failure

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CALL_TIMEOUT_S)

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_accepted(self, count: int, timeout: float) -> None:
        """Until at least `count` jobs are accepted (a point mid-stream to inject a fault at)."""
        deadline = time.monotonic() + timeout
        while self.accepted_count() < count:
            if self._failure is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {self.accepted_count()} jobs accepted, waited for {count}"
                    f" ({self._failure!r})"
                )
            time.sleep(0.1)

    def job_ids(self) -> set[str]:
        with self._lock:
            return set(self.accepted.values())

    def keys(self) -> dict[str, str]:
        with self._lock:
            return dict(self.accepted)

    def answers_between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if start <= answer.at <= end]

    # ----- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with (
                grpc.insecure_channel(self.grpc_target) as channel,
                httpx.Client(base_url=self.http_url, timeout=CALL_TIMEOUT_S) as http,
            ):
                stub = gateway_pb2_grpc.JobServiceStub(channel)
                began = time.monotonic()
                for first in range(0, self.total, self.batch):
                    if self._stop.is_set():
                        return
                    count = min(self.batch, self.total - first)
                    keys = [f"{self.name}-{index}" for index in range(first, first + count)]
                    specs = [job_spec(key, first + n) for n, key in enumerate(keys)]
                    singles = 0
                    if (first // self.batch) % self.http_singles_every == 0:
                        singles = min(self.http_singles, count)
                    for spec in specs[:singles]:
                        self._until_accepted(functools.partial(self._http_submit, http, spec))
                    if rest := specs[singles:]:
                        self._until_accepted(functools.partial(self._grpc_submit, stub, rest))
                    # Pace the stream so that faults land while it is still flowing.
                    ahead = began + (first + count) / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except BaseException as error:  # reported by wait()
            self._failure = error

    def _until_accepted(self, attempt: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.give_up_after_s
        while not attempt():
            if self._stop.is_set():
                raise RuntimeError("stopped while retrying")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway still unavailable after {self.give_up_after_s:g}s")
            time.sleep(RETRY_PAUSE_S)

    def _record(self, kind: str, transport: str, detail: str, sent: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.answers.append(Answer(now, kind, transport, detail, now - sent))

    def slowest(self) -> Answer | None:
        with self._lock:
            return max(self.answers, key=lambda answer: answer.took, default=None)

    def _accept(self, pairs: list[tuple[str, str, bool]], transport: str, sent: float) -> None:
        with self._lock:
            for key, job_id, duplicate in pairs:
                known = self.accepted.setdefault(key, job_id)
                if known != job_id:
                    raise RuntimeError(f"key {key}: accepted as {known}, then as {job_id}")
                self.duplicates += duplicate
            now = time.monotonic()
            self.answers.append(Answer(now, "accepted", transport, took=now - sent))

    def _grpc_submit(
        self, stub: gateway_pb2_grpc.JobServiceStub, specs: list[job_pb2.JobSpec]
    ) -> bool:
        request = gateway_pb2.SubmitJobsRequest(specs=specs)
        sent = time.monotonic()
        try:
            response = stub.SubmitJobs(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            code = error.code()
            if code in RETRYABLE_CODES:
                self._record("unavailable", "grpc", code.name, sent)
                return False
            self._record("error", "grpc", f"{code.name}: {error.details()}", sent)
            raise RuntimeError(f"SubmitJobs answered {code.name}: {error.details()}") from error
        if len(response.results) != len(specs):
            raise RuntimeError(f"{len(specs)} specs, {len(response.results)} results")
        pairs = [
            (spec.idempotency_key, result.job_id, result.duplicate)
            for spec, result in zip(specs, response.results, strict=True)
        ]
        self._accept(pairs, "grpc", sent)
        return True

    def _http_submit(self, http: httpx.Client, spec: job_pb2.JobSpec) -> bool:
        body: dict[str, Any] = {
            "type": spec.type,
            "payload": dict(spec.payload),
            "idempotency_key": spec.idempotency_key,
            "max_attempts": spec.max_attempts,
        }
        sent = time.monotonic()
        try:
            response = http.post("/jobs", json=body)
        except httpx.TransportError as error:  # refused, reset or timed out: outcome unknown
            self._record("unavailable", "http", type(error).__name__, sent)
            return False
        if response.status_code in RETRYABLE_HTTP:
            self._record("unavailable", "http", str(response.status_code), sent)
            return False
        if response.status_code != 202:
            self._record("error", "http", f"{response.status_code}: {response.text[:200]}", sent)
            raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
        reply = response.json()
        self._accept(
            [(spec.idempotency_key, reply["job_id"], bool(reply.get("duplicate")))], "http", sent
        )
        return True
