"""A throwaway Redis: no persistence, data dir in the state dir."""

from __future__ import annotations

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, accepts_tcp, free_port
from tools.testing.servers.programs import child_env, find_program


class RedisServer(Server[ServerInfo]):
    name = "redis"

    def _launch(self) -> ServerInfo:
        port = free_port()
        argv = [
            find_program("redis-server", "redis-server"),
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(self.state_dir),
            # A test store: nothing written to disk, no background saves competing for the CPU.
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        self._spawn(argv, env=child_env())
        return ServerInfo(host=HOST, port=port, url=f"redis://{HOST}:{port}/0")

    def _ready(self, info: ServerInfo) -> bool:
        return accepts_tcp(info.port)
