"""A throwaway MongoDB-wire server: nx-27017 (SQLite-backed, in memory), run by this Python.

There is no real mongod on these machines; nx-27017 speaks the wire protocol well enough for
pymongo round trips. It is a Python package, not a program: under Bazel no console script is
on PATH, so it runs as `sys.executable -c ...` with this interpreter's import path.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, accepts_tcp, free_port
from tools.testing.servers.programs import MissingProgramError, child_env, python_path

_MAIN = "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"


class MongoServer(Server[ServerInfo]):
    name = "mongo"

    def __init__(
        self, state_dir: str | os.PathLike[str], *, port: int | None = None, persist: bool = False
    ) -> None:
        """`port` fixed instead of a free one; `persist` keeps the data in the state dir."""
        super().__init__(state_dir)
        self._port = port
        self._persist = persist
        self.fixed_ports = port is not None

    def _launch(self) -> ServerInfo:
        if importlib.util.find_spec("nx_27017") is None:
            raise MissingProgramError(
                "the nx-27017 package is not importable: add @pip//:nx_27017 to the deps "
                "(or `pip install nx-27017`)"
            )
        port = self._port or free_port()
        database = str(self.state_dir / "nx-27017.db") if self._persist else "memory"
        argv = [
            sys.executable, "-c", _MAIN,
            "--db", database,
            "--host", HOST,
            "-p", str(port),
            # Its defaults are fixed paths in /tmp, shared by every instance on the machine.
            "--pid-file", str(self.state_dir / "nx-27017.pid"),
            "--log-file", str(self.state_dir / "nx-27017.file.log"),
        ]  # fmt: skip
        self._spawn(argv, env=child_env({"PYTHONPATH": python_path()}))
        return ServerInfo(host=HOST, port=port, url=f"mongodb://{HOST}:{port}/")

    def _ready(self, info: ServerInfo) -> bool:
        return accepts_tcp(info.port)
