"""Crash safety of the real processor: SIGKILL one of two replicas mid-stream, start another;
every job still ends COMPLETED exactly once and nothing is left queued."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from observatory.jobs.v1 import job_pb2

from services.common import amqp, topology
from services.jobstore import store
from services.jobstore.testing import migrated_connection
from services.processor.observe import EventLog, wait_status
from services.processor.testing import make_job, submit
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
pg = server_fixture("pg", PostgresServer, scope="module")

JOBS = 200


class Processors:
    """Processor subprocesses (the real main), all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env = env
        self._logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self._logs / f"processor-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.processor.main"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processors(
    rabbitmq: RabbitMQServer, pg: PostgresServer, tmp_path: Path
) -> Iterator[Processors]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "AMQP_URL": rabbitmq.info.amqp_url,
        "POSTGRES_DSN": pg.info.dsn,
        "PROCESSOR_PREFETCH": "10",
        "PROCESSOR_CONCURRENCY": "4",
        "PROCESSOR_LEASE_SECONDS": "2",
        "PROCESSOR_RETRY_BASE_MS": "200",
        "PROCESSOR_HTTP_PORT": "0",
        "PROCESSOR_SHUTDOWN_GRACE_SECONDS": "5",
    }
    group = Processors(env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        for path in sorted(tmp_path.glob("processor-*.log")):
            print(f"--- {path.name} (tail)\n" + "\n".join(path.read_text().splitlines()[-15:]))


def count(conn: store.Conn, sql: str, *params: object) -> int:
    with conn.transaction():
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    rabbitmq: RabbitMQServer, pg: PostgresServer, processors: Processors
) -> None:
    began = time.monotonic()
    connection = amqp.connect(rabbitmq.info.amqp_url, connection_name="sigkill-test")
    channel = amqp.confirmed_channel(connection)
    topology.declare(channel)
    events = EventLog(channel)
    with migrated_connection(pg.info.dsn) as conn:
        victim = processors.start()
        processors.start()
        rng = random.Random(7)
        jobs = [
            make_job("sleep", {"seconds": round(rng.uniform(0.05, 0.2), 3)}, max_attempts=3)
            for _ in range(JOBS)
        ]
        for job in jobs:
            submit(conn, channel, job)

        # Kill the victim while it has attempts running (and, with prefetch 10, more unacked).
        victim_workers = f"%:{victim.pid}:%"
        wait_for(
            lambda: count(
                conn,
                "SELECT count(*) FROM jobs WHERE status = 'running' AND worker LIKE %s",
                victim_workers,
            ),
            what="the victim to be running jobs",
            interval=0.02,
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        processors.start()

        wait_for(
            lambda: count(conn, "SELECT count(*) FROM jobs WHERE status = 'completed'"),
            what="every job to complete",
            until=lambda done: done == JOBS,
            timeout=60,
            interval=0.5,
        )
        assert count(conn, "SELECT count(*) FROM jobs WHERE status <> 'completed'") == 0
        abandoned = count(conn, "SELECT count(*) FROM job_attempts WHERE outcome = 'abandoned'")
        assert abandoned >= 1
        # Only the killed processor's attempts were abandoned, and each was retried once more.
        assert (
            count(
                conn,
                "SELECT count(*) FROM job_attempts"
                " WHERE outcome = 'abandoned' AND worker NOT LIKE %s",
                victim_workers,
            )
            == 0
        )
        assert count(conn, "SELECT count(*) FROM job_attempts WHERE finished_at IS NULL") == 0
        assert count(conn, "SELECT count(*) FROM job_attempts WHERE outcome = 'succeeded'") == JOBS

    # Exactly one job.completed event id per job (a replayed copy would carry the same id).
    wait_for(
        lambda: sum(
            1 for job in jobs if any(e.HasField("job_completed") for e in events.of(job.id))
        ),
        what="a job.completed event for every job",
        until=lambda seen: seen == JOBS,
        timeout=15,
    )
    for job in jobs:
        completed = {e.event_id for e in events.of(job.id) if e.HasField("job_completed")}
        assert len(completed) == 1, job.id
        started = [e.job_started.attempt for e in events.of(job.id) if e.HasField("job_started")]
        assert sorted(set(started)) == list(range(1, max(started) + 1))

    processors.stop_all()
    work = channel.queue_declare(topology.WORK_QUEUE, passive=True).method
    assert work.message_count == 0
    connection.close()
    assert time.monotonic() - began < 120
    print(f"{JOBS} jobs, {abandoned} abandoned attempts, {time.monotonic() - began:.1f} s")


def test_sigterm_lets_running_jobs_finish(
    rabbitmq: RabbitMQServer, pg: PostgresServer, processors: Processors
) -> None:
    connection = amqp.connect(rabbitmq.info.amqp_url, connection_name="sigterm-test")
    channel = amqp.confirmed_channel(connection)
    topology.declare(channel)
    with migrated_connection(pg.info.dsn) as conn:
        processor = processors.start()
        job = make_job("sleep", {"seconds": 1.5})
        submit(conn, channel, job)
        wait_status(conn, job.id, job_pb2.JOB_STATUS_RUNNING)
        processor.send_signal(signal.SIGTERM)
        assert processor.wait(timeout=15) == 0
        # Stopped consuming at once, but let the running job finish within the grace period.
        with conn.transaction():
            finished = store.get_job(conn, job.id)
        assert finished is not None
        assert finished.status == job_pb2.JOB_STATUS_COMPLETED
    connection.close()
