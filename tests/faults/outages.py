"""Taking a backend away for a while and giving it back.

- `restarted(stack, name)`: a real restart. The server is stopped gracefully (PostgreSQL: fast
  shutdown, SIGINT; Redis and nx-27017: SIGTERM; RabbitMQ: `rabbitmqctl shutdown` of the whole
  node), stays down for the block, then a new server process starts on the same ports with the
  same data (see `Stack.replace`). Needs a restartable stack.

- `frozen(server)`: SIGSTOP every process of the server, SIGCONT afterwards: a hung server.
  Clients see a peer that accepts nothing and answers nothing (timeouts, not refusals), a
  different and harsher case than a stop (no connection error to react to).
- `broker_stopped(server)`: `rabbitmqctl stop_app` / `start_app`: the broker application
  shuts down (every AMQP connection closed, listeners gone, the management API too) and starts
  again on the same ports from the same data directory, recovering the durable queues and
  their persistent messages. The Erlang VM stays up, which is what lets it keep its ports.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from tests.faults.stack import Stack
from tools.testing.servers import PostgresServer, RabbitMQServer, Server, procs
from tools.testing.servers.net import free_port
from tools.testing.servers.programs import child_env, find_program

_RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"
_CTL_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 60.0


@contextlib.contextmanager
def restarted(stack: Stack, name: str) -> Iterator[float]:
    """Backend `name` of `stack` stopped inside the block (yields the moment it was down), a new
    one started on the same ports and data after it."""
    server = stack.backend(name)
    stop_gracefully(server)
    try:
        yield time.monotonic()
    finally:
        stack.replace(name)


def stop_gracefully(server: Server[Any]) -> None:
    """Stops `server` the way an operator would, and checks that it exited by itself."""
    if isinstance(server, PostgresServer):
        # Fast shutdown: clients disconnected, a checkpoint, a clean exit. (The class's own
        # stop is an immediate shutdown: a crash, recovered at the next start.)
        main = next(p for p in server.processes() if p.pid == server.pid)
        main.signal(signal.SIGINT)
        assert not procs.wait_gone([main], _STOP_TIMEOUT_S), "postgres ignored a fast shutdown"
    server.stop()
    assert not server.crashed() and not [p for p in server.processes() if p.running()], (
        f"{server!r} left processes behind"
    )


@contextlib.contextmanager
def frozen(server: Server[Any]) -> Iterator[None]:
    """Every process of `server` stopped (SIGSTOP) inside the block, resumed after it."""
    stopped = [process for process in server.processes() if process.running()]
    assert stopped, f"{server!r} has no running process to freeze"
    try:
        for process in stopped:
            process.signal(signal.SIGSTOP)
        yield
    finally:
        for process in stopped:
            with contextlib.suppress(OSError):
                process.signal(signal.SIGCONT)


def rabbitmqctl(server: RabbitMQServer, *args: str) -> None:
    """Runs `rabbitmqctl -n <node> args...` against the test broker (its cookie, its epmd)."""
    info = server.info
    port = str(free_port())  # the CLI is an Erlang node too: its own distribution port
    env = child_env(
        {
            "HOME": str(server.state_dir),  # the Erlang cookie the broker uses
            "RABBITMQ_CONF_ENV_FILE": str(server.state_dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": info.host,
            "ERL_EPMD_PORT": str(info.epmd_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": port,
            "RABBITMQ_CTL_DIST_PORT_MAX": port,
        },
        drop_prefixes=("RABBITMQ_", "ERL_"),
    )
    ctl = find_program("rabbitmqctl", "rabbitmq-server", dirs=[_RABBITMQ_BIN])
    with server.log_path.open("ab") as log:  # its output next to the broker's own
        result = subprocess.run(
            [ctl, "-n", info.node, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=_CTL_TIMEOUT_S,
            check=False,
        )
    assert result.returncode == 0, (
        f"rabbitmqctl {' '.join(args)} exited with {result.returncode}\n{server.log_report()}"
    )


@contextlib.contextmanager
def broker_stopped(server: RabbitMQServer) -> Iterator[None]:
    """The broker application stopped inside the block and started again after it."""
    rabbitmqctl(server, "stop_app")
    try:
        yield
    finally:
        rabbitmqctl(server, "start_app")
