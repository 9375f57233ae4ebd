"""The processor: runs jobs from the work queue (see services/README.md)."""

from __future__ import annotations

import logging
import sys

from services.common import lifecycle, logs
from services.common.config import ConfigError, Env
from services.processor import service
from services.processor.config import ProcessorConfig


def main() -> int:
    logs.setup("processor")
    try:
        config = ProcessorConfig.from_env(Env())
    except ConfigError as error:
        logging.getLogger("processor").error("bad configuration: %s", error)
        return 2
    service.run(config, lifecycle.shutdown_event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
