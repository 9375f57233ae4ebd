"""A throwaway Redis: data dir in the state dir, no persistence unless asked (the local stack)."""

from __future__ import annotations

import os

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, accepts_tcp, free_port
from tools.testing.servers.programs import child_env, find_program


class RedisServer(Server[ServerInfo]):
    name = "redis"

    def __init__(
        self, state_dir: str | os.PathLike[str], *, port: int | None = None, persist: bool = False
    ) -> None:
        """`port` fixed instead of a free one; `persist` keeps the data (append-only file)."""
        super().__init__(state_dir)
        self._port = port
        self._persist = persist
        self.fixed_ports = port is not None

    def _launch(self) -> ServerInfo:
        port = self._port or free_port()
        persistence = ["--appendonly", "yes"] if self._persist else ["--appendonly", "no"]
        argv = [
            find_program("redis-server", "redis-server"),
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(self.state_dir),
            # No RDB snapshots competing for the CPU; a persistent store uses the append-only file.
            "--save", "",
            *persistence,
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        self._spawn(argv, env=child_env())
        return ServerInfo(host=HOST, port=port, url=f"redis://{HOST}:{port}/0")

    def _ready(self, info: ServerInfo) -> bool:
        return accepts_tcp(info.port)
