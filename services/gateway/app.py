"""Assembling the gateway: migrations, publisher, JobService, gRPC + HTTP servers, and stop."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from observatory.events.v1 import event_pb2

from services.common import grpc_server, postgres
from services.common.config import redact
from services.common.http_app import HttpServer
from services.common.pg_pool import ConnectionPool
from services.gateway import grpc_api, http_api, metrics
from services.gateway.config import GatewayConfig
from services.gateway.dead_letters import DeadLetters
from services.gateway.outbox import Outbox
from services.gateway.publisher import Publisher
from services.gateway.service import JobService
from services.jobstore import migrate

log = logging.getLogger(__name__)

VERSION = "1.0.0"


@dataclass
class RunningGateway:
    grpc_port: int
    http_port: int
    _grpc: grpc_server.GrpcServer
    _http: HttpServer
    _service: JobService
    _publisher: Publisher
    _outbox: Outbox
    _pool: ConnectionPool

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Stops accepting, lets in-flight calls finish (up to the grace), closes backends."""
        self._grpc.stop(grace_seconds)
        self._http.stop()
        # Submits still being written finish (their backend waits are bounded) before the
        # backends close; any still queued answer UNAVAILABLE.
        if not self._service.close(grace_seconds):
            log.warning("submits still being written after %.1fs; closing anyway", grace_seconds)
        self._outbox.stop()
        self._publisher.close()
        self._pool.close()
        log.info("gateway stopped")


def start(config: GatewayConfig) -> RunningGateway:
    """Starts a gateway; ports 0 pick free ones (see the returned ports).

    PostgreSQL must be up (migrations run first: psycopg.OperationalError otherwise); the broker
    may be down: requests get UNAVAILABLE until it is back.
    """
    timeout = config.backend_timeout_seconds
    pool = ConnectionPool(
        # statement_timeout bounds a statement stuck behind a lock: a 503, not a hang.
        lambda: postgres.connect(
            config.postgres_dsn,
            application_name="gateway",
            timeout=timeout,
            statement_timeout=timeout,
        ),
        # A unit of work waits on the database and, for submissions, on broker confirms, each
        # bounded by the timeout: past both, the server is frozen, not slow.
        deadline_s=2 * timeout,
    )
    with pool.connection() as conn:
        applied = migrate.migrate(conn)
    log.info("database %s ready (migrations applied: %s)", redact(config.postgres_dsn), applied)
    publisher = Publisher(config.amqp_url, timeout=config.backend_timeout_seconds)
    if not publisher.ready():
        log.warning("broker unreachable at start-up; will keep trying")
    producer = event_pb2.Producer(
        service="gateway", instance_id=config.instance_id, version=VERSION
    )
    # Past the grace a request has surely given up on its publish: a lock wait plus a confirm
    # wait, each bounded by the backend timeout.
    outbox = Outbox(pool, publisher, grace_seconds=2 * config.backend_timeout_seconds + 1).start()
    service = JobService(
        pool,
        publisher,
        outbox,
        config.limits,
        producer,
        groups=config.groups,
        on_group=metrics.GROUP_JOBS.observe,
    )
    metrics.SUBMITS_WAITING.set_function(service.queued_submits)
    dead_letters = DeadLetters(
        config.amqp_url, service.retry_dead_lettered, timeout=config.backend_timeout_seconds
    )

    def database_ready() -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    app = http_api.build_app(
        service,
        config.limits,
        {"broker": publisher.ready, "postgres": database_ready},
        dead_letters,
    )
    grpc = grpc_server.serve(
        grpc_api.registrar(grpc_api.JobServiceServicer(service, config.limits, dead_letters)),
        [grpc_api.SERVICE_NAME],
        host=config.host,
        port=config.grpc_port,
        max_message_bytes=config.limits.max_body_bytes,
    )
    try:
        http = HttpServer(app, config.host, config.http_port).start()
    except BaseException:
        grpc.stop(0)
        service.close(0)
        outbox.stop()
        publisher.close()
        pool.close()
        raise
    log.info(
        "gateway listening: gRPC %s:%d, HTTP %s:%d", config.host, grpc.port, config.host, http.port
    )
    return RunningGateway(grpc.port, http.port, grpc, http, service, publisher, outbox, pool)
