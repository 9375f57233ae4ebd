"""A throwaway Alertmanager: one receiver that does nothing, no clustering."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path

from tools.testing.servers.net import HOST
from tools.testing.servers.programs import find_program
from tools.testing.servers.promstyle import PromStyleServer

# Short group timings so a test sees notifications within seconds, not minutes.
DEFAULT_CONFIG: Mapping[str, object] = {
    "route": {
        "receiver": "default",
        "group_wait": "1s",
        "group_interval": "1s",
        "repeat_interval": "1h",
    },
    "receivers": [{"name": "default"}],
}


class AlertmanagerServer(PromStyleServer):
    name = "alertmanager"
    config_file = "alertmanager.yml"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        config: Mapping[str, object] | None = None,
        port: int | None = None,
    ) -> None:
        """`config` replaces DEFAULT_CONFIG (e.g. to add a webhook receiver)."""
        super().__init__(state_dir, port=port)
        self._configuration = copy.deepcopy(dict(config or DEFAULT_CONFIG))

    def _config(self, port: int) -> dict[str, object]:
        return self._configuration

    def _argv(self, config: Path, port: int) -> list[str]:
        return [
            # Debian's name first; upstream tarballs call it `alertmanager`.
            find_program(["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={self.state_dir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            # Empty: no gossip listener (it would take port 9094 on every interface).
            "--cluster.listen-address=",
        ]
