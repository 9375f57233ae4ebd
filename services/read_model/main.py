"""Entry point: `read_model` (settings from the environment, see config.py)."""

from __future__ import annotations

import logging
import sys

from services.common import lifecycle, logs
from services.common.config import ConfigError
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
