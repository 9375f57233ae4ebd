"""The processor against real RabbitMQ and PostgreSQL, fed exactly as the gateway feeds it."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel as Channel
from prometheus_client.parser import text_string_to_metric_families

from services.common import amqp, events, ids, postgres, rabbitmq_management, topology
from services.common.http_json import HttpError, get_json, request_json
from services.common.wire import (
    ATTEMPT_HEADER,
    CONTRACT_MAJOR,
    EVENT_BATCH_MESSAGE_TYPE,
    VERSION_HEADER,
)
from services.jobstore import store
from services.jobstore.testing import migrated_connection
from services.processor import service
from services.processor.cancels import CancelRegistry
from services.processor.config import ProcessorConfig
from services.processor.observe import DeadLetters, EventLog, attempts, wait_status
from services.processor.testing import make_job, publish_work, submit
from services.processor.worker import Disposition, Incoming, Worker
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_port
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
pg = server_fixture("pg", PostgresServer, scope="module")

BASE_MS = 200
S = job_pb2


@pytest.fixture(scope="module")
def config(rabbitmq: RabbitMQServer, pg: PostgresServer) -> ProcessorConfig:
    return ProcessorConfig(
        amqp_url=rabbitmq.info.amqp_url,
        postgres_dsn=pg.info.dsn,
        prefetch=8,
        concurrency=4,
        lease_seconds=30,
        retry_base_ms=BASE_MS,
        retry_max_ms=60_000,
        http_host="127.0.0.1",
        http_port=free_port(),
        shutdown_grace_seconds=5,
    )


@pytest.fixture(scope="module")
def processor(config: ProcessorConfig) -> Iterator[threading.Thread]:
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=service.run, args=(config, stop, ready), daemon=True)
    thread.start()
    assert ready.wait(30), "processor did not start"
    yield thread
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "processor did not stop"


@pytest.fixture(scope="module")
def channel(rabbitmq: RabbitMQServer, processor: threading.Thread) -> Iterator[Channel]:
    connection = amqp.connect(rabbitmq.info.amqp_url, connection_name="processor-test")
    channel = amqp.confirmed_channel(connection)
    topology.declare(channel)  # as the gateway does at start-up
    yield channel
    connection.close()


@pytest.fixture(scope="module")
def conn(pg: PostgresServer) -> Iterator[store.Conn]:
    with migrated_connection(pg.info.dsn) as connection:
        yield connection


@pytest.fixture(scope="module")
def event_log(channel: Channel) -> EventLog:
    return EventLog(channel)


@pytest.fixture(scope="module")
def dead(channel: Channel) -> DeadLetters:
    return DeadLetters(channel)


def kinds(envelopes: list[event_pb2.EventEnvelope]) -> list[str]:
    return [e.WhichOneof("payload") or "" for e in envelopes]


def test_retries_until_success_with_ordered_deterministic_events(
    conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    job = make_job("fail", {"until_attempt": 3}, max_attempts=3)
    submit(conn, channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_COMPLETED)
    outcomes = [a.outcome for a in attempts(conn, job.id)]
    assert outcomes == [
        S.ATTEMPT_OUTCOME_FAILED,
        S.ATTEMPT_OUTCOME_FAILED,
        S.ATTEMPT_OUTCOME_SUCCEEDED,
    ]
    seen = event_log.wait(job.id, "job_completed")
    assert kinds(seen) == [
        "job_started", "job_retry_scheduled", "job_started",
        "job_retry_scheduled", "job_started", "job_completed",
    ]  # fmt: skip
    # Version 1 is the gateway's job.created; each transition bumps it by one.
    assert [e.event_id for e in seen] == [ids.event_id(job.id, v) for v in range(2, 8)]
    # Each message is routed by the type of the events it carries.
    for delivery in event_log.deliveries:
        assert {events.routing_key(e) for e in delivery.envelopes} == {delivery.routing_key}
    assert all(e.correlation_id == job.correlation_id for e in seen)
    assert [e.job_started.attempt for e in seen if e.HasField("job_started")] == [1, 2, 3]


def test_exhausted_retries_dead_letter_after_growing_delays(
    conn: store.Conn, channel: Channel, event_log: EventLog, dead: DeadLetters
) -> None:
    job = make_job("fail", {"message": "always"}, max_attempts=3)
    submit(conn, channel, job)
    final = wait_status(conn, job.id, S.JOB_STATUS_DEAD_LETTERED)
    assert final.attempts == 3
    assert "always" in final.last_error
    tries = attempts(conn, job.id)
    assert [a.outcome for a in tries] == [S.ATTEMPT_OUTCOME_FAILED] * 3
    # The delays the system chose and recorded (no wall-clock upper bound: a loaded machine may
    # start an attempt late, never early): exponential with +-20 % jitter and 2-figure rounding.
    seen = event_log.wait(job.id, "job_dead_lettered")
    scheduled = [e.job_retry_scheduled for e in seen if e.HasField("job_retry_scheduled")]
    assert [r.attempt for r in scheduled] == [1, 2]
    delays_ms = [r.delay.ToMilliseconds() for r in scheduled]
    for k, delay_ms in enumerate(delays_ms, start=1):
        expected = BASE_MS * 2 ** (k - 1)
        assert expected * 0.75 <= delay_ms <= expected * 1.25, (k, delays_ms)
    assert delays_ms[0] < delays_ms[1], delays_ms
    # Each retry ran only once its delay was over.
    starts = [a.started_at.ToDatetime() for a in tries]
    for (before, after), retry in zip(itertools.pairwise(starts), scheduled, strict=True):
        assert after >= retry.next_attempt_at.ToDatetime() - timedelta(milliseconds=50)
        assert (after - before).total_seconds() * 1000 >= retry.delay.ToMilliseconds() * 0.9
    message = dead.wait(lambda m: m.headers.get("x-job-id") == job.id, "the job in jobs.dead")
    assert message.headers["x-reason"] == "max_attempts exhausted"
    assert message.headers["x-attempts"] == 3
    assert job_pb2.Job.FromString(message.body).id == job.id
    assert seen[-1].job_dead_lettered.reason == "max_attempts exhausted"
    assert seen[-1].job_dead_lettered.attempts == 3


def test_a_non_retryable_error_fails_at_once(conn: store.Conn, channel: Channel) -> None:
    job = make_job("fail", {"retryable": False}, max_attempts=3)
    submit(conn, channel, job)
    final = wait_status(conn, job.id, S.JOB_STATUS_FAILED)
    assert final.attempts == 1


def test_a_cancelled_pending_job_never_runs(
    conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    job = make_job("sleep", {"seconds": 0.1})
    with conn.transaction():
        store.insert_job(conn, job)
        # What the gateway's CancelJob does to a PENDING job, before its message is consumed.
        conn.execute(
            "UPDATE jobs SET status = 'cancelled', version = version + 1 WHERE id = %s", (job.id,)
        )
    publish_work(channel, job)
    seen = event_log.wait(job.id, "job_cancelled")
    assert seen[-1].producer.service == "processor"
    assert seen[-1].job_cancelled.attempt == 0
    assert attempts(conn, job.id) == []
    assert wait_status(conn, job.id, S.JOB_STATUS_CANCELLED).attempts == 0


def test_a_cancel_requested_for_a_queued_job_cancels_it(conn: store.Conn, channel: Channel) -> None:
    job = make_job("sleep", {"seconds": 0.1})
    with conn.transaction():
        store.insert_job(conn, job)
        conn.execute("UPDATE jobs SET cancel_requested = true WHERE id = %s", (job.id,))
    publish_work(channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_CANCELLED)
    assert attempts(conn, job.id) == []


def test_a_cancel_broadcast_stops_a_running_job(
    conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    job = make_job("sleep", {"seconds": 60})
    submit(conn, channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_RUNNING)
    with conn.transaction():
        conn.execute("UPDATE jobs SET cancel_requested = true WHERE id = %s", (job.id,))
    sent = time.monotonic()
    channel.basic_publish(topology.CONTROL_EXCHANGE, "", job.id.encode())
    wait_status(conn, job.id, S.JOB_STATUS_CANCELLED, timeout=10)
    # Well before the next lease renewal (every 30/3 s): the broadcast stopped it.
    assert time.monotonic() - sent < 5
    assert [a.outcome for a in attempts(conn, job.id)] == [S.ATTEMPT_OUTCOME_CANCELLED]
    assert event_log.wait(job.id, "job_cancelled")[-1].job_cancelled.attempt == 1


def test_a_timeout_is_a_timed_out_attempt_then_a_retry(
    conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    job = make_job("sleep", {"seconds": 30}, max_attempts=2, timeout=0.3)
    submit(conn, channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_DEAD_LETTERED)
    assert [a.outcome for a in attempts(conn, job.id)] == [S.ATTEMPT_OUTCOME_TIMED_OUT] * 2
    assert "job_retry_scheduled" in kinds(event_log.of(job.id))


def test_poison_messages_go_to_the_dead_letter_queue_and_the_next_job_runs(
    conn: store.Conn, channel: Channel, dead: DeadLetters
) -> None:
    good = make_job("noop")
    unknown = make_job("no.such.type")
    with conn.transaction():
        store.insert_job(conn, unknown)  # recorded by a gateway that knew the type
    poison: dict[bytes, dict[str, object]] = {
        b"not a protobuf \xff": {"x-attempt": 1, "x-contract-version": "1"},
        make_job("noop").SerializeToString(): {"x-attempt": 1, "x-contract-version": "9"},
        make_job("echo").SerializeToString(): {"x-contract-version": "1"},
        unknown.SerializeToString(): {"x-attempt": 1, "x-contract-version": "1"},
    }
    for body, headers in poison.items():
        publish_work(channel, good, body=body, headers=headers)
    submit(conn, channel, good)
    wait_status(conn, good.id, S.JOB_STATUS_COMPLETED)
    for body in poison:
        message = dead.wait(
            lambda m, body=body: m.body == body, f"poison {body[:20]!r} in jobs.dead"
        )
        assert message.headers["x-death"][0]["reason"] == "rejected"
    assert wait_status(conn, unknown.id, S.JOB_STATUS_DEAD_LETTERED).last_error.startswith(
        "unknown job type"
    )


def test_a_redelivered_completed_job_is_not_run_again(
    conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    job = make_job("noop")
    submit(conn, channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_COMPLETED)
    first = event_log.wait(job.id, "job_completed")
    publish_work(channel, job)  # a redelivery of the same message
    time.sleep(0.5)
    follow_up = make_job("noop")
    submit(conn, channel, follow_up)
    wait_status(conn, follow_up.id, S.JOB_STATUS_COMPLETED)
    time.sleep(0.5)
    assert len(attempts(conn, job.id)) == 1
    completed = [e.event_id for e in event_log.of(job.id) if e.HasField("job_completed")]
    assert len(completed) == 2  # the original and its replay, with the same id
    assert set(completed) == {first[-1].event_id}


def test_a_job_the_gateway_did_not_commit_is_recorded_and_run(
    conn: store.Conn, channel: Channel
) -> None:
    job = make_job("echo", {"message": "hi"})
    publish_work(channel, job)  # the gateway crashed between publish and commit
    final = wait_status(conn, job.id, S.JOB_STATUS_COMPLETED)
    assert final.correlation_id == job.correlation_id


def test_a_job_whose_commit_lands_while_the_processor_inserts_it_runs(
    pg: PostgresServer, conn: store.Conn, channel: Channel
) -> None:
    # The gateway's order: insert, publish, (confirms), commit. The processor's insert of the
    # same job waits on the uncommitted row, then finds it committed: the same job, not an orphan.
    job = make_job("echo", {"message": "late commit"})
    job.idempotency_key = f"key-{job.id}"
    with postgres.connect(pg.info.dsn) as gateway:
        store.insert_job(gateway, job)
        publish_work(channel, job)
        time.sleep(1.0)  # the processor is now blocked on the row
        gateway.commit()
    final = wait_status(conn, job.id, S.JOB_STATUS_COMPLETED)
    assert final.attempts == 1


def test_an_orphan_whose_key_another_job_owns_is_dropped_not_run(
    conn: store.Conn, channel: Channel, config: ProcessorConfig
) -> None:
    # The gateway published, lost the confirm and rolled back; the client resubmitted the key.
    owner = make_job("echo", {"message": "owner"})
    owner.idempotency_key = f"key-{owner.id}"
    submit(conn, channel, owner)
    wait_status(conn, owner.id, S.JOB_STATUS_COMPLETED)
    orphan = make_job("echo", {"message": "orphan"})
    orphan.idempotency_key = owner.idempotency_key
    publish_work(channel, orphan)
    follower = make_job("noop")
    submit(conn, channel, follower)
    wait_status(conn, follower.id, S.JOB_STATUS_COMPLETED)
    assert store.get_row(conn, orphan.id) is None
    conn.commit()
    url = f"http://127.0.0.1:{config.http_port}/metrics"

    def dropped() -> float:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        family = families.get("processor_orphan_messages_dropped")
        samples = [] if family is None else family.samples
        return sum(
            s.value
            for s in samples
            if s.name.endswith("_total") and s.labels == {"reason": "idempotency_key_taken"}
        )

    wait_for(dropped, until=lambda n: n >= 1, what="the orphan counted as dropped", timeout=30)
    assert [a.outcome for a in attempts(conn, owner.id)] == [S.ATTEMPT_OUTCOME_SUCCEEDED]


def test_metrics_count_by_type(config: ProcessorConfig) -> None:
    url = f"http://127.0.0.1:{config.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    completed = families["processor_jobs_completed"].samples
    assert any(s.labels == {"type": "noop"} and s.value >= 1 for s in completed)
    poison = families["processor_poison_messages"].samples
    assert any(s.labels == {"kind": "unknown_type"} and s.value >= 1 for s in poison)
    # Only registered job types ever become labels.
    assert all(s.labels.get("type") != "no.such.type" for f in families.values() for s in f.samples)


def readiness(config: ProcessorConfig) -> dict[str, object]:
    url = f"http://127.0.0.1:{config.http_port}/readyz"
    try:
        answer: dict[str, object] = get_json(url)
    except HttpError as error:
        assert error.status == 503
        answer = json.loads(error.body)
    return answer


def test_a_postgresql_outage_holds_messages_until_it_returns(
    config: ProcessorConfig, rabbitmq: RabbitMQServer, conn: store.Conn, channel: Channel
) -> None:
    admin_dsn = config.postgres_dsn.rsplit("/", 1)[0] + "/template1"
    with postgres.connect(admin_dsn, autocommit=True) as admin:
        # New connections are refused and the processor's current ones are cut: "down" for it.
        admin.execute("ALTER DATABASE postgres ALLOW_CONNECTIONS false")
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'processor%'"
            )
            job = make_job("noop")
            publish_work(channel, job)  # the processor has to record it: needs the database
            ready = wait_for(
                lambda: readiness(config),
                what="/readyz to report PostgreSQL down",
                until=lambda answer: "postgresql" in answer["failures"],  # type: ignore[operator]
            )
            assert ready["ready"] is False
            auth = (rabbitmq.info.username, rabbitmq.info.password)
            wait_for(  # held unacked, not lost (the management API's counts lag a few seconds)
                lambda: (
                    rabbitmq_management.queue(
                        rabbitmq.info.management_url, topology.WORK_QUEUE, auth=auth
                    ).messages
                ),
                what="the work message to be held in jobs.work",
            )
            with conn.transaction():
                assert store.get_job(conn, job.id) is None
        finally:
            admin.execute("ALTER DATABASE postgres ALLOW_CONNECTIONS true")
    wait_status(conn, job.id, S.JOB_STATUS_COMPLETED, timeout=30)
    wait_for(lambda: readiness(config)["ready"], what="/readyz to recover")


def test_lost_broker_connections_are_reopened(
    config: ProcessorConfig, rabbitmq: RabbitMQServer, conn: store.Conn, channel: Channel
) -> None:
    auth = (rabbitmq.info.username, rabbitmq.info.password)
    api = rabbitmq.info.management_url
    closed = 0
    for connection in get_json(f"{api}/api/connections", auth=auth):
        if str(connection.get("client_properties", {}).get("connection_name", "")).startswith(
            "processor "
        ):
            request_json(
                "DELETE",
                f"{api}/api/connections/{urllib.parse.quote(connection['name'])}",
                auth=auth,
            )
            closed += 1
    assert closed >= 1
    job = make_job("noop")
    submit(conn, channel, job)
    wait_status(conn, job.id, S.JOB_STATUS_COMPLETED, timeout=30)
    wait_for(lambda: readiness(config)["ready"], what="/readyz to report the broker back")


def test_one_batch_with_a_repeated_job_a_failure_poison_and_an_unrecorded_job(
    config: ProcessorConfig, conn: store.Conn, channel: Channel, event_log: EventLog
) -> None:
    """A micro-batch handled directly by a worker: every message settled exactly once, each job
    run once, the repeat replayed after the batch with the same event ids."""
    ran, twice, failing, unrecorded = (
        make_job("noop"),
        make_job("noop"),
        make_job("fail", {"retryable": False}),
        make_job("noop"),
    )
    with conn.transaction():
        store.insert_jobs(conn, [ran, twice, failing])
    headers: dict[str, object] = {ATTEMPT_HEADER: 1, VERSION_HEADER: CONTRACT_MAJOR}
    batch = [
        Incoming(job.SerializeToString(), headers)
        for job in (ran, twice, twice, failing, unrecorded)
    ]
    batch.insert(3, Incoming(b"not a job", headers))
    settled: list[tuple[int, Disposition]] = []
    worker = Worker(config, threading.Event(), CancelRegistry(), "batch-test")
    try:
        worker.handle_batch(batch, settled.extend)
    finally:
        worker.close()

    assert sorted(settled) == [
        (0, Disposition.ACK),
        (1, Disposition.ACK),
        (2, Disposition.ACK),
        (3, Disposition.REJECT),
        (4, Disposition.ACK),
        (5, Disposition.ACK),
    ]
    for job, status in (
        (ran, S.JOB_STATUS_COMPLETED),
        (twice, S.JOB_STATUS_COMPLETED),
        (failing, S.JOB_STATUS_FAILED),
        (unrecorded, S.JOB_STATUS_COMPLETED),
    ):
        assert wait_status(conn, job.id, status).attempts == 1
        assert len(attempts(conn, job.id)) == 1
        seen = event_log.wait(job.id, "job_completed" if job is not failing else "job_failed")
        assert [e.event_id for e in seen][:2] == [ids.event_id(job.id, v) for v in (2, 3)]
    # The repeat ran nothing: it republished the completed event, with the same id.
    completed = [e.event_id for e in event_log.of(twice.id) if e.HasField("job_completed")]
    assert completed == [ids.event_id(twice.id, 3)] * 2
    # The jobs started in one transaction: their job.started events shared one batch message.
    started = {ids.event_id(job.id, 2) for job in (ran, twice, failing)}
    assert any(
        started <= {e.event_id for e in d.envelopes}
        and d.routing_key == "job.started"
        and d.message_type == EVENT_BATCH_MESSAGE_TYPE
        for d in event_log.deliveries
    )

    # The batch delivered again (as after a crash before the acks): nothing runs again, and the
    # final events are republished, batched, with the same ids.
    before = len(event_log.deliveries)
    again: list[tuple[int, Disposition]] = []
    worker = Worker(config, threading.Event(), CancelRegistry(), "batch-test-again")
    try:
        worker.handle_batch([batch[i] for i in (0, 4, 5)], again.extend)
    finally:
        worker.close()
    assert sorted(again) == [(0, Disposition.ACK), (1, Disposition.ACK), (2, Disposition.ACK)]
    for job in (ran, failing, unrecorded):
        assert len(attempts(conn, job.id)) == 1
    finals = {ids.event_id(job.id, 3) for job in (ran, unrecorded)}
    republished = wait_for(
        lambda: event_log.since(before),
        what="the redelivered batch's events",
        until=lambda new: finals <= {e.event_id for d in new for e in d.envelopes},
    )
    assert any(
        d.routing_key == "job.completed"
        and d.message_type == EVENT_BATCH_MESSAGE_TYPE
        and finals <= {e.event_id for e in d.envelopes}
        for d in republished
    )
    # Republished from the stored row, each is the very event the batch built, not only its id.
    for job in (ran, unrecorded):
        published = [e for e in event_log.of(job.id) if e.HasField("job_completed")]
        assert len(published) == 2
        assert published[0] == published[1]
