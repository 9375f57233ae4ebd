"""The read model as a running thing: gRPC server, HTTP mirror and the Watch feed."""

from __future__ import annotations

import logging
import threading

from services.aggregates.store import Aggregates
from services.common import grpc_server, mongo, postgres, redis_store
from services.common.config import redact
from services.common.http_app import HttpServer
from services.jobstore import migrate
from services.metrics_engine.documents import COLLECTION, DATABASE
from services.read_model.config import ReadModelConfig
from services.read_model.grpc_service import SERVICE_NAME, ReadModelServicer, registrar
from services.read_model.http_api import create_app
from services.read_model.reader import ReadModel
from services.read_model.watch import WatchHub

log = logging.getLogger(__name__)


class ReadModelService:
    def __init__(self, config: ReadModelConfig) -> None:
        backends = config.backends
        with postgres.connect(backends.postgres_dsn, application_name="read-model") as conn:
            applied = migrate.migrate(conn)
        log.info("postgres %s: migrations applied %s", redact(backends.postgres_dsn), applied)
        self._mongo = mongo.connect(backends.mongo_url, app_name="read-model", timeout=5)
        self._redis = redis_store.connect(backends.redis_url)
        self.reader = ReadModel(
            backends.postgres_dsn,
            mongo.database(self._mongo, DATABASE)[COLLECTION],
            Aggregates(self._redis),
            backends.rabbitmq_management_url,
        )
        self.hub = WatchHub(backends.amqp_url, self.reader.job)
        self._stop = threading.Event()
        self._feed = threading.Thread(
            target=self.hub.run, args=(self._stop,), name="watch-feed", daemon=True
        )
        servicer = ReadModelServicer(
            self.reader,
            self.hub,
            stats_interval_s=config.stats_interval_s,
            max_watchers=config.max_watchers,
        )
        self.grpc = grpc_server.serve(
            registrar(servicer),
            [SERVICE_NAME],
            host=config.host,
            port=config.grpc_port,
            max_workers=config.max_watchers + 8,
        )
        readiness = {
            "postgres": self._postgres_ping,
            "mongodb": lambda: self._mongo.admin.command("ping"),
            "redis": self._redis.ping,
            "rabbitmq": self.hub.connected.is_set,
        }
        try:
            self.http = HttpServer(
                create_app(self.reader, self.hub, readiness), config.host, config.http_port
            ).start()
        except OSError:
            self.grpc.stop(0)
            raise
        self._feed.start()

    def _postgres_ping(self) -> bool:
        self.reader.in_postgres(lambda conn: conn.execute("SELECT 1"))
        return True

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Ends Watch streams, lets unary calls finish, then closes everything."""
        self._stop.set()
        self.hub.close_all()
        self.grpc.stop(grace_seconds)
        self.http.stop()
        self._feed.join(10)
        self.reader.close()
        self._redis.close()
        self._mongo.close()


def start(config: ReadModelConfig) -> ReadModelService:
    return ReadModelService(config)
