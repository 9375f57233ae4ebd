"""LiveFeed against an in-process fake read model: what it queries, what it forwards, and how it
reconnects by itself when the server goes away and comes back on the same address."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from interfaces.tui.dashboard_fakes import alert, job, queues, stats
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
from interfaces.tui.live import LiveFeed
from tools.testing.waiting import wait_for

RUNNING = job_pb2.JOB_STATUS_RUNNING


class FakeReadModel(read_model_pb2_grpc.ReadModelServiceServicer):
    """Answers from fixed data; `changes` are streamed to watchers after a first Stats."""

    def __init__(self) -> None:
        self.changes: queue.Queue[rm.WatchResponse] = queue.Queue()
        self.list_jobs: list[rm.ListJobsRequest] = []
        self.list_queues = 0
        self.stop = threading.Event()

    def GetStats(self, request: rm.GetStatsRequest, context: object) -> rm.GetStatsResponse:  # noqa: N802
        return rm.GetStatsResponse(stats=stats())

    def ListJobs(self, request: rm.ListJobsRequest, context: object) -> rm.ListJobsResponse:  # noqa: N802
        self.list_jobs.append(request)
        return rm.ListJobsResponse(jobs=[job(2), job(1)], next_page_token="next")  # noqa: S106

    def ListQueues(self, request: rm.ListQueuesRequest, context: object) -> rm.ListQueuesResponse:  # noqa: N802
        self.list_queues += 1
        return rm.ListQueuesResponse(queues=queues())

    def ListAlerts(self, request: rm.ListAlertsRequest, context: object) -> rm.ListAlertsResponse:  # noqa: N802
        assert list(request.states) == [rm.ALERT_STATE_FIRING]
        return rm.ListAlertsResponse(alerts=[alert("Firing")])

    def GetJobDetail(  # noqa: N802
        self, request: rm.GetJobDetailRequest, context: grpc.ServicerContext
    ) -> rm.GetJobDetailResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by the feed")

    def ListEvents(  # noqa: N802
        self, request: rm.ListEventsRequest, context: grpc.ServicerContext
    ) -> rm.ListEventsResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by the feed")

    def Watch(  # noqa: N802
        self, request: rm.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[rm.WatchResponse]:
        yield rm.WatchResponse(stats=stats())
        while context.is_active() and not self.stop.is_set():
            try:
                yield self.changes.get(timeout=0.1)
            except queue.Empty:
                continue


class Served:
    def __init__(self, port: int = 0) -> None:
        self.servicer = FakeReadModel()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        read_model_pb2_grpc.add_ReadModelServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def stop(self) -> None:
        self.servicer.stop.set()
        self.server.stop(grace=None).wait(5)


class Collected:
    """A thread-safe sink that tests can wait on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: list[Update] = []

    def __call__(self, update: Update) -> None:
        with self._lock:
            self._updates.append(update)

    def of(self, kind: type) -> list[Update]:
        with self._lock:
            return [u for u in self._updates if isinstance(u, kind)]

    def wait(self, kind: type, count: int = 1, timeout: float = 20.0) -> list[Update]:
        return wait_for(
            lambda: self.of(kind),
            until=lambda found: len(found) >= count,
            what=f"{count} x {kind.__name__}",
            timeout=timeout,
            interval=0.05,
        )


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.stop()


def quick_feed(target: str, sink: Collected) -> LiveFeed:
    return LiveFeed(target, sink, stats_interval_s=0.25, delays=lambda: iter(lambda: 0.2, None))


def test_connects_with_a_full_snapshot_then_follows_changes(served: Served) -> None:
    sink = Collected()
    feed = quick_feed(f"127.0.0.1:{served.port}", sink)
    feed.start()
    try:
        sink.wait(Connected)
        [page] = sink.of(JobsPage)
        assert isinstance(page, JobsPage) and [j.id for j in page.jobs] == [job(2).id, job(1).id]
        assert page.next_page_token == "next" and not page.append  # noqa: S105
        [alerts] = sink.of(AlertsSnapshot)
        assert isinstance(alerts, AlertsSnapshot) and alerts.alerts[0].name == "Firing"
        sink.wait(QueuesUpdate, 2)  # the initial one, then one per streamed Stats

        served.servicer.changes.put(
            rm.WatchResponse(job_changed=rm.JobChanged(job=job(3, RUNNING)))
        )
        served.servicer.changes.put(
            rm.WatchResponse(alert_changed=rm.AlertChanged(alert=alert("New")))
        )
        [changed] = sink.wait(JobUpdate)
        assert isinstance(changed, JobUpdate) and changed.job.status == RUNNING
        [new_alert] = sink.wait(AlertUpdate)
        assert isinstance(new_alert, AlertUpdate) and new_alert.alert.name == "New"
        assert sink.of(StatsUpdate)
    finally:
        feed.stop()


def test_filter_change_and_older_pages_query_the_jobs_again(served: Served) -> None:
    sink = Collected()
    feed = quick_feed(f"127.0.0.1:{served.port}", sink)
    feed.start()
    try:
        sink.wait(Connected)
        query = JobQuery(status=RUNNING, job_type="email.send")
        feed.set_query(query)
        feed.load_more(query, "next")

        pages = sink.wait(JobsPage, 3)
        assert [(p.query, p.append) for p in pages if isinstance(p, JobsPage)][1:] == [
            (query, False),
            (query, True),
        ]
        requests = served.servicer.list_jobs
        assert list(requests[1].statuses) == [RUNNING] and list(requests[1].types) == ["email.send"]
        assert requests[2].page_token == "next"  # noqa: S105
    finally:
        feed.stop()


def test_server_gone_reports_reconnecting_and_recovers_when_it_is_back() -> None:
    first = Served()
    sink = Collected()
    feed = quick_feed(f"127.0.0.1:{first.port}", sink)
    feed.start()
    second: Served | None = None
    try:
        sink.wait(Connected)
        first.stop()

        [down, *_] = sink.wait(Reconnecting)
        assert isinstance(down, Reconnecting) and down.attempt == 1
        sink.wait(Reconnecting, 2)  # keeps trying while nothing listens

        second = Served(first.port)
        sink.wait(Connected, 2)
        assert second.servicer.list_jobs, "re-queried the jobs after reconnecting"
        assert len(sink.of(AlertsSnapshot)) == 2
    finally:
        feed.stop()
        if second is not None:
            second.stop()


def test_a_silent_server_counts_as_gone(served: Served) -> None:
    sink = Collected()
    feed = LiveFeed(
        f"127.0.0.1:{served.port}",
        sink,
        stats_interval_s=0.25,
        silence_timeout_s=1.0,
        delays=lambda: iter(lambda: 0.2, None),
    )
    feed.start()  # the fake sends one Stats and then nothing: a stuck server
    try:
        [down] = sink.wait(Reconnecting, timeout=20)
        assert isinstance(down, Reconnecting) and down.reason == "no updates received"
        sink.wait(Connected, 2)
    finally:
        feed.stop()


def test_stop_ends_the_threads_promptly(served: Served) -> None:
    feed = quick_feed(f"127.0.0.1:{served.port}", Collected())
    feed.start()
    feed.stop(timeout=10)

    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("live-feed"))
