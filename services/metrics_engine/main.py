"""Entry point: `metrics_engine` (settings from the environment, see config.py)."""

from __future__ import annotations

import logging
import sys

from services.common import lifecycle, logs
from services.common.config import ConfigError
from services.metrics_engine.config import MetricsEngineConfig
from services.metrics_engine.service import start


def main() -> int:
    logs.setup("metrics-engine")
    try:
        config = MetricsEngineConfig.from_env()
    except ConfigError as error:
        logging.getLogger(__name__).error("bad configuration: %s", error)
        return 2
    stop = lifecycle.shutdown_event()
    engine = start(config)
    logging.getLogger(__name__).info("ready; HTTP on %s:%d", config.http_host, engine.http.port)
    stop.wait()
    engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
