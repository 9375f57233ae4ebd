"""The processor process: migrations, the ops HTTP server, the consumer, until a stop signal."""

from __future__ import annotations

import logging
import threading

import services.jobtypes.builtin  # noqa: F401 (registers the built-in job types)
from services.common import postgres
from services.common.config import redact
from services.common.http_app import HttpServer, ops_app
from services.jobstore import migrate
from services.processor.config import ProcessorConfig
from services.processor.consumer import Consumer

log = logging.getLogger(__name__)


def postgres_probe(dsn: str) -> None:
    with postgres.connect(dsn, autocommit=True, timeout=2) as conn:
        conn.execute("SELECT 1")


def run(
    config: ProcessorConfig, stop: threading.Event, ready: threading.Event | None = None
) -> None:
    log.info(
        "processor starting: broker %s, postgresql %s, prefetch %d, concurrency %d",
        redact(config.amqp_url),
        redact(config.postgres_dsn),
        config.prefetch,
        config.concurrency,
    )
    consumer = Consumer(config, stop)
    app = ops_app(
        "processor",
        {
            "broker": consumer.connected.is_set,
            "postgresql": lambda: postgres_probe(config.postgres_dsn),
        },
    )
    http = HttpServer(app, config.http_host, config.http_port).start()
    log.info("ops HTTP on %s:%d", config.http_host, http.port)
    try:
        if not migrate.migrate_when_reachable(config.postgres_dsn, stop, "processor migrate"):
            return
        if ready is not None:
            ready.set()
        consumer.run()
    finally:
        http.stop()
        log.info("processor stopped")
