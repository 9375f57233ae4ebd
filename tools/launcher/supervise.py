"""The supervisor process's entry point (the CLI's hidden `_supervise` subcommand)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from services.common.lifecycle import shutdown_event
from tools.launcher.plan import Component, components
from tools.launcher.servers import make_server
from tools.launcher.stack import SIGNAL_REPAIR
from tools.launcher.state import StateStore
from tools.launcher.supervisor import Supervisor, initial_record
from tools.testing.servers import Server


def supervise(root: Path, processors: int, ports: dict[str, int]) -> int:
    """Runs the stack until SIGTERM/SIGINT; the exit status is 1 if start-up failed."""
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store = StateStore(root)
    store.create()
    parts = components(ports, processors)

    def factory(component: Component) -> Server[Any]:
        return make_server(component, store.component_dir(component.name), ports, processors)

    supervisor = Supervisor(store, parts, factory, initial_record(parts, ports, processors))
    stop = shutdown_event(also={SIGNAL_REPAIR: supervisor.repair_requested})
    return supervisor.run(stop)
