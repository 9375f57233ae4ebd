"""Entry point: `read_model` (settings from the environment, see config.py)."""

from __future__ import annotations

import logging
import sys

from services.common import lifecycle, logs
from services.common.config import ConfigError
from services.jobstore import migrate
from services.read_model.config import ReadModelConfig
from services.read_model.service import start


def main() -> int:
    logs.setup("read-model")
    log = logging.getLogger(__name__)
    try:
        config = ReadModelConfig.from_env()
    except ConfigError as error:
        log.error("bad configuration: %s", error)
        return 2
    stop = lifecycle.shutdown_event()
    dsn = config.backends.postgres_dsn
    if not migrate.migrate_when_reachable(dsn, stop, "read-model migrate"):
        return 0  # stopped while waiting for PostgreSQL
    service = start(config)
    log.info(
        "ready; gRPC on %s:%d, HTTP on %s:%d",
        config.host,
        service.grpc.port,
        config.host,
        service.http.port,
    )
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
