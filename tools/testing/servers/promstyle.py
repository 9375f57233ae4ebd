"""What Prometheus and Alertmanager share: a config file, one HTTP port, a `/-/ready` probe."""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, free_port, http_status
from tools.testing.servers.programs import child_env


class PromStyleServer(Server[ServerInfo]):
    """A daemon of the Prometheus family, configured by one YAML file.

    The file is written as JSON, which is YAML too, so no YAML library is needed.
    """

    config_file: ClassVar[str]

    def __init__(self, state_dir: str | os.PathLike[str], *, port: int | None = None) -> None:
        """`port` fixed instead of a free one."""
        super().__init__(state_dir)
        self._port = port
        self.fixed_ports = port is not None

    def _launch(self) -> ServerInfo:
        port = self._port or free_port()
        config = self.state_dir / self.config_file
        config.write_text(self._config_text(port))
        self._spawn(self._argv(config, port), env=child_env())
        return ServerInfo(host=HOST, port=port, url=f"http://{HOST}:{port}")

    def _ready(self, info: ServerInfo) -> bool:
        return http_status(f"{info.url}/-/ready") == 200

    @abstractmethod
    def _config(self, port: int) -> dict[str, object]:
        """The configuration file's content."""

    def _config_text(self, port: int) -> str:
        """The file as written: `_config` as JSON, unless a subclass has the YAML text itself."""
        return json.dumps(self._config(port), indent=2) + "\n"

    @abstractmethod
    def _argv(self, config: Path, port: int) -> list[str]:
        """The command line, listening on HOST:port only."""
