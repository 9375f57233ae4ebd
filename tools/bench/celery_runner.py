"""Runs N Celery no-op tasks through the same RabbitMQ and times them.

Celery without a result backend reports no completions, so the end is found from the broker and
the worker: the queue has no ready message left (passive queue.declare, exact), then the worker
has nothing reserved or active (remote-control inspect), i.e. every task ran and was acked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pika

from tools.bench import stats
from tools.bench.celery_app import QUEUE, TASK, make_app
from tools.testing.servers.programs import child_env, python_path

POLL_SECONDS = 0.005


class CeleryError(RuntimeError):
    """The Celery worker did not start or the tasks did not drain."""


@dataclass(frozen=True)
class CeleryResult(stats.Throughput):
    """mode: 'celery default' or 'celery confirm_publish'."""


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def celery_worker(broker_url: str, concurrency: int, log_dir: Path) -> Iterator[Worker]:
    """`celery worker` with the default (prefork) pool and `concurrency` children."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "celery-worker.log"
    argv = [
        sys.executable, "-m", "celery", "-A", "tools.bench.celery_app", "worker",
        "-Q", QUEUE, "-P", "prefork", "-c", str(concurrency), "-l", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    env = child_env({"BENCH_CELERY_BROKER": broker_url, "PYTHONPATH": python_path()})
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(broker_url, process, log_path)
        yield Worker(process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def _wait_ready(broker_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    app = make_app(broker_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CeleryError(f"celery worker exited: {log_path.read_text()[-2000:]}")
        if app.control.inspect(timeout=1.0).ping():
            return
    raise CeleryError(f"celery worker not ready after 60 s: {log_path.read_text()[-2000:]}")


def _worker_busy(inspect_result: Mapping[str, object] | None) -> bool:
    return inspect_result is None or any(bool(tasks) for tasks in inspect_result.values())


def run(broker_url: str, jobs: int, *, confirm_publish: bool, timeout: float) -> CeleryResult:
    mode = "celery confirm_publish" if confirm_publish else "celery default"
    app = make_app(broker_url, confirm_publish=confirm_publish)
    task = app.tasks[TASK]
    with app.producer_or_acquire() as producer:
        began = time.time()
        for _ in range(jobs):
            task.apply_async(producer=producer)
        submit_seconds = time.time() - began
    deadline = time.monotonic() + timeout
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        while channel.queue_declare(QUEUE, passive=True).method.message_count > 0:
            if time.monotonic() > deadline:
                raise CeleryError(f"{mode} {jobs}: queue not drained after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
    finally:
        connection.close()
    inspect = app.control.inspect(timeout=1.0, limit=1)
    while _worker_busy(inspect.active()) or _worker_busy(inspect.reserved()):
        if time.monotonic() > deadline:
            raise CeleryError(f"{mode} {jobs}: worker still busy after {timeout:.0f} s")
    end_to_end_seconds = time.time() - began
    app.close()
    return CeleryResult(mode, jobs, submit_seconds, end_to_end_seconds)
