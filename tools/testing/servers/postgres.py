"""A throwaway PostgreSQL: a fresh cluster (trust auth) listening on 127.0.0.1 only.

PostgreSQL refuses to run as root. `runuser -u postgres` does not work under Bazel's
linux-sandbox (its user namespace maps uid 0 only: setgroups and chown to postgres fail), so
as root the programs run in a nested user namespace where we *appear* as the `postgres` user
while keeping root's access to files: the same command works in and out of the sandbox, and
the data dir may live anywhere root can write.

The cluster still lives in a short directory under /tmp: the Unix socket path must fit in 107
bytes, and Bazel's TEST_TMPDIR is deeper than that.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, accepts_tcp, free_port
from tools.testing.servers.programs import (
    MissingProgramError,
    child_env,
    find_program,
    postgres_bin_dirs,
    search_dirs,
)

_OS_USER = "postgres"
_SUPERUSER = "postgres"
_DATABASE = "postgres"
_SHORT_TMP = "/tmp"  # noqa: S108 (a private mkdtemp dir inside it; see the module docstring)


@dataclass(frozen=True)
class PostgresInfo(ServerInfo):
    user: str
    dbname: str
    data_dir: Path
    socket_dir: Path

    @property
    def dsn(self) -> str:
        """A libpq connection URI (psycopg.connect takes it as is)."""
        return self.url


class PostgresServer(Server[PostgresInfo]):
    name = "postgres"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """`port` fixed instead of a free one; `data_dir` a durable cluster kept across starts
        (created on first use) instead of a throwaway one."""
        super().__init__(state_dir)
        self._port = port
        self._data_dir = None if data_dir is None else Path(data_dir)
        self.fixed_ports = port is not None
        self._cluster_dir: Path | None = None
        self._shm_id: int | None = None
        self._pg_ctl = ""
        self._env: dict[str, str] = {}

    def _launch(self) -> PostgresInfo:
        dirs = [*postgres_bin_dirs(), *search_dirs()]
        postgres = find_program("postgres", "postgresql", dirs=dirs)
        # initdb and pg_ctl must be the postmaster's version: take them from its real directory.
        bindir = str(Path(postgres).resolve().parent)
        initdb = find_program("initdb", "postgresql", dirs=[bindir])
        self._pg_ctl = find_program("pg_ctl", "postgresql", dirs=[bindir])
        base = _SHORT_TMP if os.access(_SHORT_TMP, os.W_OK) else None
        self._cluster_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=base))
        durable = self._data_dir is not None
        data_dir = self._data_dir or self._cluster_dir / "data"
        socket_dir = self._cluster_dir / "socket"
        socket_dir.mkdir(mode=0o700)
        # PG* variables (PGDATA, PGPORT...) of the caller would redirect the tools.
        self._env = child_env({"LC_ALL": "C.UTF-8"}, drop_prefixes=("PG",))
        if not (data_dir / "PG_VERSION").is_file():
            initdb_argv = [
                initdb, "-D", str(data_dir), "-U", _SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ]  # fmt: skip
            self._run_checked(self._unprivileged(initdb_argv), env=self._env, timeout=120)
        port = self._port or free_port()
        # Durability is pointless for a throwaway cluster and costs seconds per test.
        # A durable cluster (the local stack) keeps every commit that was acknowledged.
        speed = (
            []
            if durable
            else ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        )
        postgres_argv = [
            postgres, "-D", str(data_dir), "-p", str(port), "-k", str(socket_dir),
            "-c", f"listen_addresses={HOST}",
            *speed,
        ]  # fmt: skip
        self._spawn(self._unprivileged(postgres_argv), env=self._env)
        return PostgresInfo(
            host=HOST,
            port=port,
            url=f"postgresql://{_SUPERUSER}@{HOST}:{port}/{_DATABASE}",
            user=_SUPERUSER,
            dbname=_DATABASE,
            data_dir=data_dir,
            socket_dir=socket_dir,
        )

    def _ready(self, info: PostgresInfo) -> bool:
        # postmaster.pid line 8 turns "ready" once connections are accepted (PostgreSQL >= 10).
        try:
            lines = (info.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        key_and_id = lines[6].split()  # line 7: shared memory key and id
        if len(key_and_id) == 2 and key_and_id[1].isdigit():
            self._shm_id = int(key_and_id[1])
        return accepts_tcp(info.port)

    def _graceful_stop(self) -> None:
        # Throwaway clusters stop at once; a durable one shuts down cleanly (no recovery after).
        mode = "fast" if self._data_dir is not None else "immediate"
        argv = [self._pg_ctl, "-D", str(self.info.data_dir), "-m", mode, "-w", "stop"]
        status = self._run(self._unprivileged(argv), env=self._env, timeout=20)
        if status != 0:  # pg_ctl found no postmaster to signal: do what it would have done
            self._main().signal(signal.SIGQUIT)

    def _cleanup(self) -> None:
        # A SIGKILLed postmaster leaves its System V segment behind; pg_ctl stop does not.
        if self._shm_id is not None and _shm_unattached(self._shm_id):
            self._run(
                [find_program("ipcrm", "util-linux"), "-m", str(self._shm_id)],
                env=child_env(),
                timeout=10,
            )
        if self._cluster_dir is not None:
            shutil.rmtree(self._cluster_dir, ignore_errors=True)

    def _unprivileged(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError as error:
            raise MissingProgramError(
                f"user {_OS_USER!r} missing: install it with `apt-get install postgresql`"
            ) from error
        unshare = find_program("unshare", "util-linux")
        return [unshare, "--user", f"--map-user={_OS_USER}", f"--map-group={_OS_USER}", "--", *argv]


def _shm_unattached(shm_id: int) -> bool:
    """True if System V segment `shm_id` exists and no process has it attached."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1]) == shm_id:
                return int(fields[6]) == 0  # columns: key shmid perms size cpid lpid nattch
    return False
