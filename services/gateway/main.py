"""The gateway process: `python -m services.gateway.main` or `bazel run //services/gateway:main`.

Settings (environment): AMQP_URL, POSTGRES_DSN (local defaults: the local stack on 127.0.0.1;
required with credentials when OBSERVATORY_MODE=production), GATEWAY_HOST (127.0.0.1),
GATEWAY_GRPC_PORT (50051), GATEWAY_HTTP_PORT (8080), GATEWAY_MAX_PAYLOAD_BYTES (65536),
GATEWAY_MAX_BODY_BYTES (4 MiB, HTTP body and gRPC message), GATEWAY_BACKEND_TIMEOUT_SECONDS (3).

Exit status: 0 after SIGTERM/SIGINT, 2 for bad configuration, 1 when it cannot start
(e.g. PostgreSQL unreachable for the start-up migrations).
"""

from __future__ import annotations

import logging
import sys

import psycopg

from services.common import lifecycle, logs
from services.common.config import ConfigError, Env
from services.gateway.app import start
from services.gateway.config import GatewayConfig
from services.jobstore import migrate

log = logging.getLogger("services.gateway")


def main() -> int:
    logs.setup("gateway")
    try:
        config = GatewayConfig.from_env(Env())
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        return 2
    stop = lifecycle.shutdown_event()
    if not migrate.migrate_when_reachable(config.postgres_dsn, stop, "gateway migrate"):
        return 0  # stopped while waiting for PostgreSQL
    try:
        gateway = start(config)
    except (psycopg.Error, OSError) as error:
        log.error("cannot start: %s", error)
        return 1
    stop.wait()
    log.info("shutting down")
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
