"""The read model against real PostgreSQL, MongoDB(-wire), Redis and RabbitMQ, fed by the real
metrics engine: ListJobs filters and paging, job detail, stats, events, queues, alerts, Watch,
the HTTP mirror, grpcurl, and the service as a subprocess stopped by SIGTERM."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from services.aggregates.store import Aggregates
from services.common import postgres, redis_store, topology
from services.common.config import Backends
from services.jobstore import store
from services.metrics_engine.config import MetricsEngineConfig
from services.metrics_engine.sample_events import JobStory, publish
from services.metrics_engine.service import start as start_engine
from services.read_model.config import ReadModelConfig
from services.read_model.service import ReadModelService
from services.read_model.service import start as start_read_model
from tools.grpcurl.grpcurl import run as run_grpcurl
from tools.testing.servers import MongoServer, PostgresServer, RabbitMQServer, RedisServer
from tools.testing.servers.fixtures import server_fixture
from tools.testing.servers.net import free_port
from tools.testing.servers.programs import child_env, python_path
from tools.testing.stack.backends import management_url
from tools.testing.waiting import wait_for

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration

rabbitmq = server_fixture("rabbitmq", RabbitMQServer, scope="module")
postgres_db = server_fixture("postgres_db", PostgresServer, scope="module")
mongo = server_fixture("mongo", MongoServer, scope="module")
redis_db = server_fixture("redis_db", RedisServer, scope="module")

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
TYPES = ("email", "resize", "report")
STATUSES = ("pending", "running", "completed", "failed", "dead_lettered")


@dataclass
class Stack:
    backends: Backends
    read_model: ReadModelService
    stub: read_model_pb2_grpc.ReadModelServiceStub
    http: str
    jobs: list[job_pb2.Job]  # as seeded, newest first
    story: JobStory  # the events of jobs[0]


def backends(
    rabbitmq: RabbitMQServer, pg: PostgresServer, mongo: MongoServer, redis_db: RedisServer
) -> Backends:
    info = rabbitmq.info
    return Backends(
        amqp_url=info.amqp_url,
        postgres_dsn=pg.info.dsn,
        redis_url=redis_db.info.url,
        mongo_url=mongo.info.url,
        rabbitmq_management_url=management_url(info),
    )


def seed_jobs(dsn: str) -> list[job_pb2.Job]:
    """15 jobs over 3 types and 5 statuses; pairs share a created_at to test the id tie-break."""
    jobs = []
    with postgres.connect(dsn) as conn:
        for index in range(15):
            job = job_pb2.Job(
                id=str(uuid.uuid4()),
                type=TYPES[index % 3],
                max_attempts=3,
                correlation_id=f"corr-{index}",
            )
            job.payload.update({"customer": {"id": index % 4}, "index": index})
            job.timeout.FromSeconds(30)
            job.created_at.FromDatetime(T0 + timedelta(seconds=index // 2))
            store.insert_job(conn, job)
            conn.execute(
                "UPDATE jobs SET status = %s, version = version + 1 WHERE id = %s",
                (STATUSES[index % 5], job.id),
            )
            stored = store.get_job(conn, job.id)
            assert stored is not None
            jobs.append(stored)
        conn.commit()
    return sorted(jobs, key=lambda j: (j.created_at.ToDatetime(), j.id), reverse=True)


@pytest.fixture(scope="module")
def stack(
    rabbitmq: RabbitMQServer, postgres_db: PostgresServer, mongo: MongoServer, redis_db: RedisServer
) -> Iterator[Stack]:
    config = backends(rabbitmq, postgres_db, mongo, redis_db)
    engine = start_engine(
        MetricsEngineConfig(config.amqp_url, config.mongo_url, config.redis_url, http_port=0)
    )
    read_model = start_read_model(
        ReadModelConfig(config, grpc_port=0, http_port=0, stats_interval_s=0.3)
    )
    try:
        jobs = seed_jobs(config.postgres_dsn)
        target = jobs[0]
        story = JobStory(T0, target.type, job_id=target.id).created().started(1, 10)
        story.retry(1, 20).started(2, 5).completed(2, 30)
        with postgres.connect(config.postgres_dsn) as conn:
            for number, outcome in ((1, "failed"), (2, "succeeded")):
                conn.execute(
                    "INSERT INTO job_attempts (job_id, number, started_at, finished_at, outcome,"
                    " worker) VALUES (%s, %s, %s, %s, %s, 'w1')",
                    (target.id, number, T0, T0 + timedelta(seconds=1), outcome),
                )
        others = [JobStory(T0, j.type, job_id=j.id).created() for j in jobs[1:]]
        # Out of order on the wire: the timeline must still come back oldest first.
        publish(
            config.amqp_url, list(reversed(story.events)) + [e for s in others for e in s.events]
        )
        aggregates = Aggregates(redis_store.connect(config.redis_url))
        wait_for(
            lambda: aggregates.totals()["submitted"],
            what="the metrics engine to apply the seeded events",
            until=lambda n: n == 15,
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{read_model.grpc.port}")
        yield Stack(
            config,
            read_model,
            read_model_pb2_grpc.ReadModelServiceStub(channel),
            f"http://127.0.0.1:{read_model.http.port}",
            jobs,
            story,
        )
        channel.close()
    finally:
        read_model.stop()
        engine.stop()


def list_all(
    stub: read_model_pb2_grpc.ReadModelServiceStub, request: rm.ListJobsRequest
) -> list[str]:
    ids: list[str] = []
    while True:
        page = stub.ListJobs(request, timeout=10)
        assert len(page.jobs) <= (request.page_size or 50)
        ids += [job.id for job in page.jobs]
        if not page.next_page_token:
            return ids
        request.page_token = page.next_page_token


def test_list_jobs_pages_newest_first_without_gaps_or_duplicates(stack: Stack) -> None:
    ids = list_all(stack.stub, rm.ListJobsRequest(page_size=4))
    assert ids == [job.id for job in stack.jobs]
    assert len(stack.stub.ListJobs(rm.ListJobsRequest(), timeout=10).jobs) == 15


def test_list_jobs_filters_combine(stack: Stack) -> None:
    request = rm.ListJobsRequest(
        statuses=[job_pb2.JOB_STATUS_COMPLETED, job_pb2.JOB_STATUS_FAILED],
        types=["email", "resize"],
        page_size=2,
    )
    expected = [
        j.id
        for j in stack.jobs
        if j.type in ("email", "resize")
        and job_pb2.JobStatus.Name(j.status) in ("JOB_STATUS_COMPLETED", "JOB_STATUS_FAILED")
    ]
    assert expected  # the seed covers this combination
    assert list_all(stack.stub, request) == expected

    by_payload = rm.ListJobsRequest()
    by_payload.payload_filters.add(key="customer.id", value=struct_pb2.Value(number_value=1))
    assert list_all(stack.stub, by_payload) == [
        j.id for j in stack.jobs if j.payload.fields["customer"].struct_value["id"] == 1
    ]
    as_string = rm.ListJobsRequest()
    as_string.payload_filters.add(key="customer.id", value=struct_pb2.Value(string_value="1"))
    assert list_all(stack.stub, as_string) == []  # JSON comparison: "1" is not 1

    in_range = rm.ListJobsRequest()
    in_range.created.start_time.FromDatetime(T0 + timedelta(seconds=2))
    in_range.created.end_time.FromDatetime(T0 + timedelta(seconds=4))
    start, end = T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)
    assert list_all(stack.stub, in_range) == [
        j.id for j in stack.jobs if start <= j.created_at.ToDatetime(tzinfo=UTC) < end
    ]


def test_bad_list_requests_are_invalid_argument_naming_the_field(stack: Stack) -> None:
    with pytest.raises(grpc.RpcError) as error:
        bad = rm.ListJobsRequest(page_token="not-a-token")  # noqa: S106
        stack.stub.ListJobs(bad, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (error.value.details() or "")
    token = stack.stub.ListJobs(rm.ListJobsRequest(page_size=1), timeout=10).next_page_token
    with pytest.raises(grpc.RpcError) as error:
        stack.stub.ListJobs(rm.ListJobsRequest(types=["email"], page_token=token), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_job_detail_has_attempts_and_the_timeline_in_order(stack: Stack) -> None:
    detail = stack.stub.GetJobDetail(rm.GetJobDetailRequest(job_id=stack.story.job_id), timeout=10)
    assert detail.job.id == stack.story.job_id
    assert [a.number for a in detail.attempts] == [1, 2]
    assert detail.attempts[1].outcome == job_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert [e.event_id for e in detail.events] == [e.event_id for e in stack.story.events]
    assert detail.events[-1].job_completed.run_duration.ToMilliseconds() == 30

    with pytest.raises(grpc.RpcError) as error:
        stack.stub.GetJobDetail(rm.GetJobDetailRequest(job_id=str(uuid.uuid4())), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        stack.stub.GetJobDetail(rm.GetJobDetailRequest(job_id="nope"), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "job_id" in (error.value.details() or "")


def test_stats_are_the_redis_aggregates(stack: Stack) -> None:
    stats = stack.stub.GetStats(rm.GetStatsRequest(), timeout=10).stats
    counts = {c.status: c.count for c in stats.by_status}
    assert len(counts) == 7  # every status, zeros included
    assert counts[job_pb2.JOB_STATUS_COMPLETED] == 1
    assert counts[job_pb2.JOB_STATUS_PENDING] == 14
    assert stats.total_jobs == 15
    assert [t.type for t in stats.by_type] == sorted(TYPES)
    assert sum(t.total for t in stats.by_type) == 15
    assert [s.window.seconds for s in stats.throughput] == [60, 3600]
    assert stats.queue_wait.sample_count == 2
    assert stats.run.sample_count == 1


def test_list_events_pages_through_everything(stack: Stack) -> None:
    request = rm.ListEventsRequest(page_size=4)
    seen: list[event_pb2.EventEnvelope] = []
    while True:
        page = stack.stub.ListEvents(request, timeout=10)
        seen += page.events
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert len(seen) == 19, [(e.occurred_at.ToJsonString(), e.event_id[:8]) for e in seen]
    assert len({e.event_id for e in seen}) == 19
    times = [e.occurred_at.ToDatetime() for e in seen]
    assert times == sorted(times)
    completed = stack.stub.ListEvents(
        rm.ListEventsRequest(event_types=[event_pb2.EVENT_TYPE_JOB_COMPLETED]), timeout=10
    )
    assert [e.event_id for e in completed.events] == [stack.story.events[-1].event_id]


def test_queues_come_from_the_broker(stack: Stack) -> None:
    queues = {q.name: q for q in stack.stub.ListQueues(rm.ListQueuesRequest(), timeout=10).queues}
    system = {topology.WORK_QUEUE, topology.DEAD_QUEUE, *topology.METRICS_ENGINE_QUEUES}
    assert system <= set(queues)
    assert queues[topology.DEAD_QUEUE].dead_letter
    assert not queues[topology.WORK_QUEUE].dead_letter
    assert queues[topology.AGGREGATES_QUEUE].HasField("observed_at")


def http_json(url: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_alert_webhook_then_list_alerts(stack: Stack) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "DLQGrowing", "severity": "warning"},
        "annotations": {"summary": "dead letters"},
        "startsAt": T0.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "fp-1",
    }
    resolved = {**alert, "status": "resolved", "fingerprint": "fp-0", "endsAt": T0.isoformat()}
    status, body = http_json(
        stack.http + "/alerts/webhook", {"version": "4", "alerts": [resolved, alert]}
    )
    assert (status, body) == (200, {"received": 2})
    listed = stack.stub.ListAlerts(rm.ListAlertsRequest(), timeout=10).alerts
    assert [a.fingerprint for a in listed] == ["fp-1", "fp-0"]  # firing first
    assert listed[0].severity == rm.ALERT_SEVERITY_WARNING
    firing = stack.stub.ListAlerts(rm.ListAlertsRequest(states=[rm.ALERT_STATE_FIRING]), timeout=10)
    assert [a.fingerprint for a in firing.alerts] == ["fp-1"]
    status, body = http_json(stack.http + "/alerts/webhook", {"version": "4", "alerts": [{}]})
    assert status == 400 and body["field"] == "alerts[0].fingerprint"


def test_watch_streams_stats_and_job_changes(stack: Stack) -> None:
    request = rm.WatchRequest(job_types=[stack.jobs[1].type])
    request.stats_interval.FromMilliseconds(300)
    call = stack.stub.Watch(request, timeout=30)
    first = next(call)
    assert first.HasField("stats")  # the current stats come first
    job = stack.jobs[1]
    other = next(j for j in stack.jobs if j.type != job.type)
    unwanted = JobStory(T0, other.type, job_id=other.id).created().started(1, 1).events[-1]
    wanted = JobStory(T0, job.type, job_id=job.id).created().started(1, 1).events[-1]
    published = time.monotonic()
    publish(stack.backends.amqp_url, [unwanted, wanted])
    stats_seen = 0
    for update in call:
        if update.HasField("stats"):
            stats_seen += 1
            continue
        assert update.job_changed.event.event_id == wanted.event_id  # the type filter holds
        assert update.job_changed.job.id == job.id
        assert update.job_changed.job.type == job.type
        break
    assert time.monotonic() - published < 5
    for update in call:  # stats keep coming
        if update.HasField("stats"):
            break
    call.cancel()
    wait_for(
        stack.read_model.hub.watchers, what="the watcher to go", until=lambda n: n == 0, timeout=5
    )


def test_watch_pushes_alert_changes(stack: Stack) -> None:
    topics = [rm.WATCH_TOPIC_STATS, rm.WATCH_TOPIC_ALERTS]
    call = stack.stub.Watch(rm.WatchRequest(topics=topics), timeout=30)
    assert next(call).HasField("stats")  # subscribed: the first snapshot is sent after that
    alert = {
        "status": "firing",
        "labels": {"alertname": "QueueBacklog", "severity": "info"},
        "startsAt": T0.isoformat(),
        "fingerprint": "fp-watch",
    }
    status, _ = http_json(stack.http + "/alerts/webhook", {"version": "4", "alerts": [alert]})
    assert status == 200
    changes = (u for u in call if not u.HasField("stats"))
    update = next(changes)
    assert not update.HasField("job_changed")  # not asked for
    assert update.alert_changed.alert.fingerprint == "fp-watch"
    assert update.alert_changed.alert.severity == rm.ALERT_SEVERITY_INFO
    call.cancel()


def test_watch_rejects_unspecified_topic(stack: Stack) -> None:
    call = stack.stub.Watch(rm.WatchRequest(topics=[rm.WATCH_TOPIC_UNSPECIFIED]), timeout=10)
    with pytest.raises(grpc.RpcError) as error:
        next(call)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "topics" in (error.value.details() or "")


def test_http_mirror_agrees_with_grpc(stack: Stack) -> None:
    status, jobs = http_json(stack.http + "/jobs?status=completed&status=failed&page_size=3")
    request = rm.ListJobsRequest(
        statuses=[job_pb2.JOB_STATUS_COMPLETED, job_pb2.JOB_STATUS_FAILED], page_size=3
    )
    assert status == 200
    assert jobs == json_format.MessageToDict(
        stack.stub.ListJobs(request, timeout=10), preserving_proto_field_name=True
    )
    status, payload = http_json(stack.http + "/jobs?payload=customer.id=2")
    assert {j["payload"]["customer"]["id"] for j in payload["jobs"]} == {2}
    job_id = stack.story.job_id
    status, detail = http_json(f"{stack.http}/jobs/{job_id}")
    grpc_detail = stack.stub.GetJobDetail(rm.GetJobDetailRequest(job_id=job_id), timeout=10)
    assert detail == json_format.MessageToDict(grpc_detail, preserving_proto_field_name=True)
    status, stats = http_json(stack.http + "/stats")
    assert (
        stats["stats"]["by_status"]
        == json_format.MessageToDict(
            stack.stub.GetStats(rm.GetStatsRequest(), timeout=10), preserving_proto_field_name=True
        )["stats"]["by_status"]
    )
    status, events_page = http_json(f"{stack.http}/events?job_id={job_id}&type=job_started")
    assert len(events_page["events"]) == 2
    status, queues = http_json(stack.http + "/queues")
    assert status == 200 and queues["queues"]

    for path, parameter in [
        ("/jobs?status=bogus", "status"),
        ("/jobs?page_size=many", "page_size"),
        ("/jobs?created_after=yesterday", "created_after"),
        ("/jobs?page_token=zzz", "page_token"),
        ("/events?type=job_exploded", "type"),
        ("/jobs/not-a-uuid", "job_id"),
    ]:
        status, body = http_json(stack.http + path)
        assert (status, body["field"]) == (400, parameter), path
    status, _ = http_json(f"{stack.http}/jobs/{uuid.uuid4()}")
    assert status == 404


def test_openapi_and_offline_docs(stack: Stack) -> None:
    status, spec = http_json(stack.http + "/openapi.json")
    assert status == 200 and {"/jobs", "/jobs/{job_id}", "/stats", "/alerts/webhook"} <= set(
        spec["paths"]
    )
    with urllib.request.urlopen(stack.http + "/docs", timeout=10) as response:  # noqa: S310
        page = response.read().decode()
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    with urllib.request.urlopen(  # noqa: S310
        stack.http + "/docs/assets/swagger-ui-bundle.js", timeout=10
    ) as response:
        assert len(response.read()) > 100_000


def grpcurl(*args: str) -> str:
    return run_grpcurl("-plaintext", *args)


def test_grpcurl_sees_the_service_and_gets_stats(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.read_model.grpc.port}"
    assert "observatory.readmodel.v1.ReadModelService" in grpcurl(address, "list")
    described = grpcurl(address, "describe", "observatory.readmodel.v1.ReadModelService")
    assert "rpc Watch" in described and "rpc GetStats" in described
    output = grpcurl(address, "observatory.readmodel.v1.ReadModelService/GetStats")
    stats = json.loads(output)
    assert stats["stats"]["total_jobs"] == "15"  # grpcurl prints proto field names


def run_until_healthy(module: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env=child_env({"PYTHONPATH": python_path(), **env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: http_json(f"http://127.0.0.1:{port}/readyz")[0],
            what=f"{module} to be ready",
            until=lambda status: status == 200,
            ignoring=(OSError,),
            timeout=60,
        )
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def test_both_services_run_as_processes_and_exit_0_on_sigterm(stack: Stack) -> None:
    b = stack.backends
    common = {
        "AMQP_URL": b.amqp_url,
        "POSTGRES_DSN": b.postgres_dsn,
        "REDIS_URL": b.redis_url,
        "MONGO_URL": b.mongo_url,
        "RABBITMQ_MANAGEMENT_URL": b.rabbitmq_management_url,
    }
    read_port, engine_port = free_port(), free_port()
    read_model = run_until_healthy(
        "services.read_model.main",
        {
            **common,
            "READ_MODEL_HTTP_PORT": str(read_port),
            "READ_MODEL_GRPC_PORT": str(free_port()),
        },
        read_port,
    )
    engine = run_until_healthy(
        "services.metrics_engine.main",
        {**common, "METRICS_ENGINE_HTTP_PORT": str(engine_port)},
        engine_port,
    )
    for process in (read_model, engine):
        process.send_signal(signal.SIGTERM)
    for process in (read_model, engine):
        try:
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.stderr is not None
        lines = process.stderr.read().decode().splitlines()
        assert lines and all(json.loads(line)["level"] for line in lines)  # JSON logs
        assert b.rabbitmq_management_url not in "\n".join(lines)  # no passwords in logs


def test_bad_configuration_exits_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.read_model.main"],
        env=child_env({"PYTHONPATH": python_path(), "READ_MODEL_GRPC_PORT": "http"}),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"READ_MODEL_GRPC_PORT" in result.stderr


def test_a_backend_down_is_unavailable_not_a_crash(stack: Stack) -> None:
    broken_redis = f"redis://127.0.0.1:{free_port()}/0"
    backends = dataclasses.replace(stack.backends, redis_url=broken_redis)
    service = start_read_model(ReadModelConfig(backends, grpc_port=0, http_port=0))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
            stub = read_model_pb2_grpc.ReadModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as error:
                stub.GetStats(rm.GetStatsRequest(), timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            # What does not need Redis still works.
            assert stub.ListJobs(rm.ListJobsRequest(page_size=1), timeout=10).jobs
        http = f"http://127.0.0.1:{service.http.port}"
        assert http_json(http + "/stats")[0] == 503
        # Only Redis is missing: the event feed's broker connection (made in the background at
        # start-up, slow on a loaded machine) must not be what /readyz reports.
        assert service.hub.connected.wait(30), "the event feed never reached the broker"
        status, ready = http_json(http + "/readyz")
        assert status == 503 and set(ready["failures"]) == {"redis"}
    finally:
        service.stop()
