"""The dashboard's live feed: the read model's Watch stream plus the queries around it.

On every (re)connect it queries the current state (stats, the first jobs page, queues, firing
alerts), then follows Watch: stats every interval, job and alert changes as they happen. Queue
depths are not streamed, so each stats update triggers one ListQueues (event driven, no polling
of its own). Any error or silence ends the session: the sink hears `Reconnecting`, and after a
capped, jittered backoff everything is queried again. Updates go to a sink callable from the
feed's threads; the sink must be thread-safe (the dashboard hands them to the urwid loop).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.duration_pb2 import Duration
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from interfaces.tui.dashboard_model import (
    AlertsSnapshot,
    AlertUpdate,
    Connected,
    JobQuery,
    JobsPage,
    JobUpdate,
    QueuesUpdate,
    Reconnecting,
    StatsUpdate,
    Update,
)
from services.common import lifecycle

log = logging.getLogger(__name__)

Sink = Callable[[Update], None]

JOBS_PAGE_SIZE = 100  # jobs fetched per ListJobs; the screen pages through them locally
CALL_TIMEOUT_S = 5.0
STATS_INTERVAL_S = 1.0
# No message (not even stats) for this long means the server is stuck: reconnect.
SILENCE_TIMEOUT_S = 6.0


@dataclass(frozen=True)
class _LoadJobs:
    query: JobQuery
    page_token: str = ""


class _RefreshQueues:
    pass


_Command = _LoadJobs | _RefreshQueues


class _Cancellable(Protocol):
    def cancel(self) -> bool: ...


class LiveFeed:
    """Follows the read model at `target` (host:port) until `stop()`."""

    def __init__(
        self,
        target: str,
        sink: Sink,
        *,
        query: JobQuery | None = None,
        stats_interval_s: float = STATS_INTERVAL_S,
        silence_timeout_s: float = SILENCE_TIMEOUT_S,
        delays: Callable[[], Iterator[float]] = lambda: lifecycle.backoff(0.5, 10.0),
    ) -> None:
        self._target = target
        self._sink = sink
        self._query = query or JobQuery()
        self._stats_interval_s = stats_interval_s
        self._silence_timeout_s = silence_timeout_s
        self._delays = delays
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stub: read_model_pb2_grpc.ReadModelServiceStub | None = None
        self._call: _Cancellable | None = None
        self._last_message = time.monotonic()
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._watch_loop, name="live-feed-watch", daemon=True),
            threading.Thread(target=self._command_loop, name="live-feed-queries", daemon=True),
        ]

    # ----- what the dashboard calls ------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._cancel_call()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def set_query(self, query: JobQuery) -> None:
        """New jobs-table filters: fetch the first page for them (the watch goes on as is)."""
        with self._lock:
            self._query = query
        self._commands.put(_LoadJobs(query))

    def load_more(self, query: JobQuery, page_token: str) -> None:
        """Fetch the page after `page_token` (appended to the table)."""
        self._commands.put(_LoadJobs(query, page_token))

    # ----- the session: query, then watch ------------------------------------------------------

    def _watch_loop(self) -> None:
        delays = self._delays()
        attempt = 0
        while not self._stop.is_set():
            reason = "stream ended"
            channel = grpc.insecure_channel(self._target)
            try:
                stub = read_model_pb2_grpc.ReadModelServiceStub(channel)
                self._initial_queries(stub)
                with self._lock:
                    self._stub = stub
                self._sink(Connected(self._target))
                attempt = 0
                delays = self._delays()
                self._follow(stub)
            except grpc.RpcError as error:
                reason = _describe(error)
            except Exception as error:  # a bug must not end the feed: say so, and retry
                log.exception("read model feed failed")
                reason = f"unexpected {type(error).__name__}"
            finally:
                with self._lock:
                    self._stub = None
                channel.close()
            if self._stop.is_set():
                return
            attempt += 1
            delay = next(delays)
            log.info("read model feed down (%s); retry %d in %.1fs", reason, attempt, delay)
            self._sink(Reconnecting(self._target, attempt, delay, reason))
            self._stop.wait(delay)

    def _initial_queries(self, stub: read_model_pb2_grpc.ReadModelServiceStub) -> None:
        with self._lock:
            query = self._query
        stats = stub.GetStats(rm.GetStatsRequest(), timeout=CALL_TIMEOUT_S).stats
        jobs = stub.ListJobs(query.request(JOBS_PAGE_SIZE), timeout=CALL_TIMEOUT_S)
        queues = stub.ListQueues(rm.ListQueuesRequest(), timeout=CALL_TIMEOUT_S).queues
        alerts = stub.ListAlerts(
            rm.ListAlertsRequest(states=[rm.ALERT_STATE_FIRING]), timeout=CALL_TIMEOUT_S
        ).alerts
        self._sink(StatsUpdate(stats))
        self._sink(JobsPage(query, tuple(jobs.jobs), jobs.next_page_token))
        self._sink(QueuesUpdate(tuple(queues)))
        self._sink(AlertsSnapshot(tuple(alerts)))

    def _follow(self, stub: read_model_pb2_grpc.ReadModelServiceStub) -> None:
        interval = Duration()
        interval.FromMilliseconds(int(self._stats_interval_s * 1000))
        call = stub.Watch(rm.WatchRequest(stats_interval=interval))
        with self._lock:
            self._call = call
            self._last_message = time.monotonic()
        if self._stop.is_set():
            call.cancel()
        try:
            for message in call:
                with self._lock:
                    self._last_message = time.monotonic()
                kind = message.WhichOneof("update")
                if kind == "stats":
                    self._sink(StatsUpdate(message.stats))
                    self._commands.put(_RefreshQueues())
                elif kind == "job_changed":
                    self._sink(JobUpdate(message.job_changed.job))
                elif kind == "alert_changed":
                    self._sink(AlertUpdate(message.alert_changed.alert))
        finally:
            with self._lock:
                self._call = None

    def _cancel_call(self) -> None:
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    # ----- queries asked for while watching, and the silence watchdog -------------------------

    def _command_loop(self) -> None:
        while not self._stop.is_set():
            try:
                command = self._commands.get(timeout=0.5)
            except queue.Empty:
                self._check_silence()
                continue
            if isinstance(command, _RefreshQueues):
                self._drain_refreshes()
            with self._lock:
                stub = self._stub
            if stub is None:
                continue  # not connected: the next session queries everything again
            try:
                self._run(stub, command)
            except grpc.RpcError as error:  # the watch notices the outage too and reconnects
                log.info("read model query failed: %s", _describe(error))
            except Exception:  # a bug must not end the feed's queries
                log.exception("read model query failed")
            self._check_silence()

    def _drain_refreshes(self) -> None:
        """Several stats updates queued while ListQueues was slow need only one refresh."""
        pending: list[_Command] = []
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            if not isinstance(command, _RefreshQueues):
                pending.append(command)
        for command in pending:
            self._commands.put(command)

    def _run(self, stub: read_model_pb2_grpc.ReadModelServiceStub, command: _Command) -> None:
        if isinstance(command, _RefreshQueues):
            queues = stub.ListQueues(rm.ListQueuesRequest(), timeout=CALL_TIMEOUT_S).queues
            self._sink(QueuesUpdate(tuple(queues)))
            return
        request = command.query.request(JOBS_PAGE_SIZE, command.page_token)
        jobs = stub.ListJobs(request, timeout=CALL_TIMEOUT_S)
        self._sink(
            JobsPage(
                command.query,
                tuple(jobs.jobs),
                jobs.next_page_token,
                append=bool(command.page_token),
            )
        )

    def _check_silence(self) -> None:
        with self._lock:
            call, last = self._call, self._last_message
        if call is not None and time.monotonic() - last > self._silence_timeout_s:
            log.info("read model silent for %.0fs; reconnecting", self._silence_timeout_s)
            call.cancel()


def _describe(error: grpc.RpcError) -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    if code is None:
        return type(error).__name__
    if code is grpc.StatusCode.CANCELLED:
        return "no updates received"
    if code is grpc.StatusCode.UNAVAILABLE:
        return "read model unavailable"
    return code.name.lower()
