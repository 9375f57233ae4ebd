"""Group commit against real PostgreSQL and RabbitMQ: concurrent submits share commits yet each
caller gets exactly its own jobs, correlation ids and idempotency answers; a request PostgreSQL
refuses fails alone; an outage fails every caller of a group with nothing accepted.

Two set-ups: the whole gateway over gRPC (its groups form as load allows), and a JobService whose
writer is held at will (`Gate`) so that chosen requests form exactly one group.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest
from observatory.events.v1 import event_pb2
from observatory.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from observatory.jobs.v1 import job_pb2
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import REGISTRY

from services.common import amqp, events, topology
from services.common import postgres as pg
from services.common.pg_pool import ConnectionPool
from services.gateway.app import RunningGateway, start
from services.gateway.config import GroupLimits, Limits
from services.gateway.integration_support import backend_proxies, drain, gateway_config
from services.gateway.outbox import Outbox
from services.gateway.publisher import Publisher
from services.gateway.service import JobService, Submitted, UnavailableError
from services.gateway.tcp_proxy import TcpProxy
from services.jobstore import migrate, store
from tools.testing.servers import PostgresServer, RabbitMQServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.waiting import wait_for

pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
postgres = server_fixture("postgres", PostgresServer, scope="module")

EVENTS_QUEUE = "group-commit-test.events"


@pytest.fixture(scope="module")
def proxies(rabbitmq: RabbitMQServer, postgres: PostgresServer) -> Iterator[dict[str, TcpProxy]]:
    with backend_proxies(rabbitmq, postgres) as both:
        yield both


@pytest.fixture(scope="module")
def gateway(
    rabbitmq: RabbitMQServer, postgres: PostgresServer, proxies: dict[str, TcpProxy]
) -> Iterator[RunningGateway]:
    groups = GroupLimits(max_writers=2, max_jobs=500)
    running = start(gateway_config(rabbitmq, postgres, proxies, groups=groups))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def db(postgres: PostgresServer, gateway: RunningGateway) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres.info.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def broker(rabbitmq: RabbitMQServer) -> Iterator[BlockingChannel]:
    connection = amqp.connect(rabbitmq.info.amqp_url)
    channel = connection.channel()
    topology.declare(channel)
    channel.queue_declare(EVENTS_QUEUE)
    channel.queue_bind(EVENTS_QUEUE, topology.EVENTS_EXCHANGE, "job.#")
    yield channel
    connection.close()


@pytest.fixture
def queues(broker: BlockingChannel) -> BlockingChannel:
    for queue in (topology.WORK_QUEUE, EVENTS_QUEUE):
        broker.queue_purge(queue)
    return broker


@pytest.fixture
def stub(gateway: RunningGateway) -> Iterator[gateway_pb2_grpc.JobServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.JobServiceStub(channel)


@pytest.fixture
def callers() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(32) as executor:
        yield executor


def work_jobs(channel: BlockingChannel) -> list[job_pb2.Job]:
    return [job_pb2.Job.FromString(body) for _, body in drain(channel, topology.WORK_QUEUE)]


def created_events(channel: BlockingChannel) -> list[event_pb2.EventEnvelope]:
    return [
        envelope
        for properties, body in drain(channel, EVENTS_QUEUE)
        for envelope in events.from_message(properties.type, body)
        if envelope.WhichOneof("payload") == "job_created"
    ]


def job_count(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM jobs").fetchone()
    assert row is not None
    return int(row[0])


def group_histogram() -> tuple[float, float]:
    """(groups committed, jobs in them) so far, from the gateway's histogram."""
    count = REGISTRY.get_sample_value("gateway_submit_group_jobs_count") or 0.0
    total = REGISTRY.get_sample_value("gateway_submit_group_jobs_sum") or 0.0
    return count, total


def noop(**fields: Any) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(type="noop", **fields)


# -- the gateway over gRPC -------------------------------------------------------------------


def test_concurrent_single_submits_share_commits_and_keep_their_own_ids(
    stub: gateway_pb2_grpc.JobServiceStub,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
    callers: ThreadPoolExecutor,
) -> None:
    groups_before, jobs_before = group_histogram()
    rows_before = job_count(db)

    def submit(n: int) -> tuple[str, str]:
        cid = f"trace-{n}"
        response = stub.SubmitJob(
            gateway_pb2.SubmitJobRequest(spec=noop(), correlation_id=cid), timeout=30
        )
        assert response.status == job_pb2.JOB_STATUS_PENDING and not response.duplicate
        return response.job_id, cid

    answers = dict(callers.map(submit, range(200)))
    assert len(answers) == 200
    assert job_count(db) == rows_before + 200
    stored = dict(
        db.execute(
            "SELECT id::text, correlation_id FROM jobs WHERE id = ANY(%s::uuid[])", (list(answers),)
        ).fetchall()
    )
    assert stored == answers
    work = wait_for(
        lambda: work_jobs(queues), what="200 work messages", until=lambda jobs: len(jobs) == 200
    )
    assert {job.id: job.correlation_id for job in work} == answers
    created = created_events(queues)
    assert {e.job_id: e.correlation_id for e in created} == answers
    assert len(created) == 200
    groups, jobs = group_histogram()
    assert jobs - jobs_before == 200
    assert groups - groups_before < 200  # fewer commits than submits


def test_a_caller_giving_up_leaves_no_group_hanging(
    stub: gateway_pb2_grpc.JobServiceStub, callers: ThreadPoolExecutor
) -> None:
    def submit(deadline: float) -> grpc.StatusCode:
        try:
            stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=noop()), timeout=deadline)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    hasty = [callers.submit(submit, 0.02) for _ in range(30)]
    patient = [callers.submit(submit, 30) for _ in range(30)]
    assert {f.result() for f in patient} == {grpc.StatusCode.OK}
    assert {f.result() for f in hasty} <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}
    began = time.monotonic()
    assert submit(30) == grpc.StatusCode.OK
    assert time.monotonic() - began < 2


def submit_all(
    stub: gateway_pb2_grpc.JobServiceStub, callers: ThreadPoolExecutor
) -> list[grpc.StatusCode]:
    """20 single submits and 3 batches at once; the status of each."""

    def single() -> None:
        stub.SubmitJob(gateway_pb2.SubmitJobRequest(spec=noop()), timeout=30)

    def batch() -> None:
        stub.SubmitJobs(gateway_pb2.SubmitJobsRequest(specs=[noop()] * 5), timeout=30)

    def status(call: Callable[[], None]) -> grpc.StatusCode:
        try:
            call()
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    return list(callers.map(status, [single] * 20 + [batch] * 3))


def test_postgresql_down_fails_every_caller_and_accepts_nothing(
    stub: gateway_pb2_grpc.JobServiceStub,
    proxies: dict[str, TcpProxy],
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
    callers: ThreadPoolExecutor,
) -> None:
    before = job_count(db)
    proxies["pg"].close()
    try:
        assert set(submit_all(stub, callers)) == {grpc.StatusCode.UNAVAILABLE}
    finally:
        proxies["pg"].open()
    assert job_count(db) == before
    assert drain(queues, topology.WORK_QUEUE) == []
    assert drain(queues, EVENTS_QUEUE) == []
    wait_for(
        lambda: set(submit_all(stub, callers)),
        what="the gateway to accept again",
        until=lambda codes: codes == {grpc.StatusCode.OK},
        timeout=20,
    )


def test_broker_known_down_fails_every_caller_before_writing(
    gateway: RunningGateway,
    stub: gateway_pb2_grpc.JobServiceStub,
    proxies: dict[str, TcpProxy],
    db: psycopg.Connection[Any],
    callers: ThreadPoolExecutor,
) -> None:
    proxies["amqp"].close()
    try:
        # The gateway learns of the outage on a publish: that change had committed (accepted,
        # left to the outbox relay). From then on every change is refused before writing.
        wait_for(
            lambda: submit_all(stub, callers),
            what="the gateway to see the broker down",
            until=lambda codes: set(codes) == {grpc.StatusCode.UNAVAILABLE},
            timeout=20,
        )
        before = job_count(db)
        assert set(submit_all(stub, callers)) == {grpc.StatusCode.UNAVAILABLE}
        assert job_count(db) == before
    finally:
        proxies["amqp"].open()
    wait_for(
        lambda: set(submit_all(stub, callers)),
        what="the gateway to accept again",
        until=lambda codes: codes == {grpc.StatusCode.OK},
        timeout=30,
    )


# -- one group, chosen by the test -----------------------------------------------------------


class Gate:
    """The service's on_group hook: `hold()` stops the next group's writer before its write, so
    the submits made meanwhile queue up and form the following group."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._open = threading.Event()
        self._open.set()
        self._entered = threading.Event()

    def __call__(self, jobs: int) -> None:
        self.sizes.append(jobs)
        self._entered.set()
        assert self._open.wait(30)

    def hold(self) -> None:
        self._open.clear()
        self._entered.clear()

    def wait_held(self) -> None:
        assert self._entered.wait(30)

    def release(self) -> None:
        self._open.set()


@pytest.fixture
def held(rabbitmq: RabbitMQServer, postgres: PostgresServer) -> Iterator[tuple[JobService, Gate]]:
    """A JobService on the real backends with one writer and a Gate."""
    pool = ConnectionPool(lambda: pg.connect(postgres.info.dsn, timeout=5), deadline_s=10)
    publisher = Publisher(rabbitmq.info.amqp_url, timeout=5)
    outbox = Outbox(pool, publisher, grace_seconds=30).start()
    gate = Gate()
    service = JobService(
        pool,
        publisher,
        outbox,
        Limits(),
        event_pb2.Producer(service="gateway", instance_id="group-commit-test", version="test"),
        groups=GroupLimits(max_writers=1),
        on_group=gate,
    )
    with pool.connection() as conn:
        migrate.migrate(conn)
        conn.commit()
    yield service, gate
    gate.release()
    assert service.close(10)
    outbox.stop()
    publisher.close()
    pool.close()


Call = tuple[list[job_pb2.JobSpec], str]  # a submit's specs and correlation id


def one_group(
    held: tuple[JobService, Gate], callers: ThreadPoolExecutor, calls: Sequence[Call]
) -> list[Future[list[Submitted]]]:
    """Submits `calls` (in order) so that they form one group, behind a held first submit."""
    service, gate = held
    gate.hold()
    first = callers.submit(service.submit, [noop()], "first")
    gate.wait_held()
    futures = []
    for specs, cid in calls:
        futures.append(callers.submit(service.submit, specs, cid))
        wait_for(service.queued_submits, what=f"{cid} queued", until=len(futures).__eq__)
    gate.release()
    first.result(30)
    for future in futures:
        future.exception(30)
    assert gate.sizes[-1] == sum(len(specs) for specs, _ in calls)  # they went as one group
    return futures


def answers(results: Sequence[list[Submitted]]) -> list[list[tuple[int, bool]]]:
    """Each result as (index of its job among the distinct job ids, duplicate): comparable
    between runs with different ids."""
    order: dict[str, int] = {}
    return [
        [(order.setdefault(r.job_id, len(order)), r.duplicate) for r in result]
        for result in results
    ]


def keyed_calls() -> list[Call]:
    """Two single submits with one key, then a batch repeating a key of its own."""
    key, other = f"k-{uuid.uuid4()}", f"k-{uuid.uuid4()}"
    return [
        ([noop(idempotency_key=key)], "a"),
        ([noop(idempotency_key=key)], "b"),
        ([noop(idempotency_key=other), noop(idempotency_key=other), noop()], "c"),
    ]


def test_idempotency_keys_in_one_group_answer_as_sequential_submits_do(
    held: tuple[JobService, Gate],
    callers: ThreadPoolExecutor,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    service, _ = held
    sequential = [service.submit(specs, cid) for specs, cid in keyed_calls()]
    drain(queues, topology.WORK_QUEUE)
    before = job_count(db)
    grouped = [f.result() for f in one_group(held, callers, keyed_calls())]
    assert answers(grouped) == answers(sequential)
    assert answers(grouped) == [[(0, False)], [(0, True)], [(1, False), (1, True), (2, False)]]
    assert job_count(db) == before + 1 + 3  # the held first submit, then 3 new jobs
    work = work_jobs(queues)
    assert len(work) == 4
    assert {grouped[0][0].job_id, grouped[2][0].job_id, grouped[2][2].job_id} < {
        job.id for job in work
    }


def test_each_job_of_a_group_keeps_its_requests_correlation_id(
    held: tuple[JobService, Gate],
    callers: ThreadPoolExecutor,
    queues: BlockingChannel,
    db: psycopg.Connection[Any],
) -> None:
    calls: list[Call] = [([noop()], "trace-a"), ([noop(), noop()], "trace-b"), ([noop()], "c")]
    results = [f.result() for f in one_group(held, callers, calls)]
    expected = {
        r.job_id: cid for (_, cid), result in zip(calls, results, strict=True) for r in result
    }
    stored = dict(
        db.execute(
            "SELECT id::text, correlation_id FROM jobs WHERE id = ANY(%s::uuid[])",
            (list(expected),),
        ).fetchall()
    )
    assert stored == expected
    assert {j.id: j.correlation_id for j in work_jobs(queues) if j.id in expected} == expected
    created = {e.job_id: e.correlation_id for e in created_events(queues)}
    assert {job_id: created[job_id] for job_id in expected} == expected


def test_a_request_postgresql_refuses_fails_alone(
    held: tuple[JobService, Gate],
    callers: ThreadPoolExecutor,
    db: psycopg.Connection[Any],
) -> None:
    refused = noop()
    refused.payload.update({"note": "nul \u0000 in text"})  # jsonb cannot hold \u0000
    calls: list[Call] = [([noop()], "a"), ([noop(), refused], "b"), ([noop()], "c")]
    before = job_count(db)
    first, bad, last = one_group(held, callers, calls)
    assert isinstance(bad.exception(), psycopg.DataError)
    accepted = [r.job_id for f in (first, last) for r in f.result()]
    assert job_count(db) == before + 1 + 2  # the held first submit and the two good ones
    row = db.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s::uuid[])", (accepted,))
    assert row.fetchone() == (2,)


def test_closing_refuses_new_submits(held: tuple[JobService, Gate]) -> None:
    service, _ = held
    assert service.close(5)
    with pytest.raises(UnavailableError, match="stopping"):
        service.submit([noop()], "late")


def test_a_deadlock_over_idempotency_keys_is_written_again(
    held: tuple[JobService, Gate],
    callers: ThreadPoolExecutor,
    postgres: PostgresServer,
    db: psycopg.Connection[Any],
) -> None:
    """Another transaction takes the submit's keys in the opposite order: PostgreSQL aborts the
    submit's transaction (the first to wait), which is written again and finds the keys taken."""
    service, _ = held
    first, second = f"k-{uuid.uuid4()}", f"k-{uuid.uuid4()}"

    def other_job(key: str) -> job_pb2.Job:
        job = job_pb2.Job(id=str(uuid.uuid4()), type="noop", idempotency_key=key, max_attempts=3)
        job.timeout.FromSeconds(30)
        job.created_at.GetCurrentTime()
        return job

    with psycopg.connect(postgres.info.dsn) as other:
        ((taken_second, _),) = store.insert_jobs(other, [other_job(second)])
        submit = callers.submit(
            service.submit, [noop(idempotency_key=first), noop(idempotency_key=second)], "a"
        )
        wait_for(
            lambda: db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone(),
            what="the submit waiting for the other transaction's key",
            until=lambda row: row == (1,),
        )
        ((taken_first, _),) = store.insert_jobs(other, [other_job(first)])  # closes the cycle
        other.commit()
    results = submit.result(30)
    assert [(r.job_id, r.duplicate) for r in results] == [
        (taken_first.id, True),
        (taken_second.id, True),
    ]
