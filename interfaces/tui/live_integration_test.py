"""LiveFeed against the real pipeline: jobs submitted through the gateway show up as JobChanged
and Stats; the read model process stopped -> "reconnecting"; a new one on the same ports -> the
feed recovers by itself and follows new jobs again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2

from interfaces.tui.dashboard_model import (
    Connected,
    JobsPage,
    JobUpdate,
    QueuesUpdate,
    Reconnecting,
    StatsUpdate,
    Update,
)
from interfaces.tui.live import LiveFeed
from tools.testing.stack.backends import running_backends
from tools.testing.stack.services import ServiceProcess
from tools.testing.waiting import wait_for

pytestmark = pytest.mark.integration

COMPLETED = job_pb2.JOB_STATUS_COMPLETED
WAIT_S = 40.0  # generous: two cores shared with other test suites


class Collected:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.updates: list[Update] = []

    def __call__(self, update: Update) -> None:
        with self._lock:
            self.updates.append(update)

    def since(self, start: int) -> list[Update]:
        with self._lock:
            return self.updates[start:]

    def mark(self) -> int:
        with self._lock:
            return len(self.updates)

    def wait(self, what: str, start: int, predicate: Callable[[Update], bool]) -> Update:
        found = wait_for(
            lambda: next((u for u in self.since(start) if predicate(u)), None),
            what=what,
            until=lambda found: found is not None,
            timeout=WAIT_S,
            interval=0.1,
        )
        assert found is not None
        return found


class Stack:
    def __init__(self, root: Path, backends: dict[str, str]) -> None:
        self.root = root
        self.backends = backends
        self.processes: list[ServiceProcess] = []

    def start(self, service: str, key: str, **ports: int) -> ServiceProcess:
        process = ServiceProcess(self.root / key, service, self.backends, **ports)
        self.processes.append(process)
        process.start()
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("live")
    with running_backends(root) as servers:
        stack = Stack(root, servers.env())
        try:
            for name in ("gateway", "metrics_engine", "processor", "read_model"):
                stack.start(name, name)
            yield stack
        except BaseException:
            print("\n".join(p.log_report(40) for p in stack.processes))
            raise
        finally:
            stack.stop_all()


def submit(gateway: str) -> str:
    spec = job_pb2.JobSpec(type="echo")
    with grpc.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.JobServiceStub(channel)
        return stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=spec), timeout=30).job_id


def completed(job_id: str) -> Callable[[Update], bool]:
    return lambda u: isinstance(u, JobUpdate) and u.job.id == job_id and u.job.status == COMPLETED


def test_feed_follows_jobs_survives_a_read_model_restart(stack: Stack) -> None:
    gateway = next(p for p in stack.processes if p.service == "gateway").info.grpc_target
    read_model = stack.processes[-1]
    sink = Collected()
    feed = LiveFeed(read_model.info.grpc_target, sink, stats_interval_s=0.5)
    feed.start()
    try:
        sink.wait("connected", 0, lambda u: isinstance(u, Connected))
        assert any(isinstance(u, JobsPage) for u in sink.since(0))
        assert any(isinstance(u, QueuesUpdate) and u.queues for u in sink.since(0))

        job_id = submit(gateway)
        sink.wait("the job completing", 0, completed(job_id))
        sink.wait(
            "stats counting it",
            0,
            lambda u: isinstance(u, StatsUpdate) and u.stats.total_jobs >= 1,
        )

        mark = sink.mark()
        read_model.stop()
        down = sink.wait("reconnecting", mark, lambda u: isinstance(u, Reconnecting))
        assert isinstance(down, Reconnecting) and down.attempt >= 1

        mark = sink.mark()
        stack.start(
            "read_model",
            "read_model-2",
            http_port=read_model.info.port,
            grpc_port=read_model.info.grpc_port,
        )
        sink.wait("connected again", mark, lambda u: isinstance(u, Connected))
        page = sink.wait("jobs re-queried", mark, lambda u: isinstance(u, JobsPage))
        assert isinstance(page, JobsPage) and job_id in {j.id for j in page.jobs}

        second = submit(gateway)
        sink.wait("a new job after the restart", mark, completed(second))
    finally:
        feed.stop()
