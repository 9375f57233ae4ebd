"""A throwaway RabbitMQ node with the management and Prometheus plugins, all on 127.0.0.1.

Each instance has its own node name, Erlang cookie (HOME is the state dir), epmd port and
distribution port, so several brokers can run side by side. The epmd is started by us, in
the foreground, so its PID is known and it is stopped with the broker (an epmd the VM starts
itself daemonizes and outlives it).

The scripts come from /usr/lib/rabbitmq/bin: the /usr/sbin ones are wrappers that, for root,
`su rabbitmq`, which drops our HOME (cookie) and cannot write a root-owned temp dir.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from tools.testing.servers import procs
from tools.testing.servers.base import Server, ServerInfo
from tools.testing.servers.net import HOST, accepts_tcp, free_port, free_ports
from tools.testing.servers.procs import ProcessId
from tools.testing.servers.programs import child_env, find_program

_BIN_DIR = "/usr/lib/rabbitmq/bin"
DEFAULT_PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
# The built-in user; RabbitMQ lets it in from loopback only, which is all we listen on.
_USER = "guest"
_PASSWORD = "guest"  # noqa: S105 (RabbitMQ's well-known default, loopback only)


@dataclass(frozen=True)
class RabbitMQInfo(ServerInfo):
    """`port`/`url` are AMQP; the management API and Prometheus endpoint have their own ports."""

    management_port: int
    prometheus_port: int
    dist_port: int
    epmd_port: int
    node: str
    username: str
    password: str

    @property
    def amqp_url(self) -> str:
        return self.url

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}/metrics"


@dataclass(frozen=True)
class RabbitMQPorts:
    """Fixed ports for a broker that must be found at known addresses (the local stack)."""

    amqp: int
    management: int
    prometheus: int
    dist: int
    epmd: int


class RabbitMQServer(Server[RabbitMQInfo]):
    name = "rabbitmq"
    ready_timeout = 60.0
    stop_timeout = 30.0

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        ports: RabbitMQPorts | None = None,
        node: str | None = None,
    ) -> None:
        """`ports` fixed instead of free ones; `node` a fixed node name, which keeps the
        broker's definitions and messages across starts (they are stored per node name)."""
        super().__init__(state_dir)
        self._plugins = tuple(plugins)
        self._ports = ports
        self._node = node
        self.fixed_ports = ports is not None
        self._epmd: ProcessId | None = None
        self._script: ProcessId | None = None
        self._beam: ProcessId | None = None
        self._env: dict[str, str] = {}
        self._rabbitmqctl = ""

    def _launch(self) -> RabbitMQInfo:
        if self._ports is None:
            amqp, management, prometheus, dist, epmd_port = free_ports(5)
        else:
            fixed = self._ports
            amqp, management, prometheus = fixed.amqp, fixed.management, fixed.prometheus
            dist, epmd_port = fixed.dist, fixed.epmd
        node = self._node or f"rabbit-{secrets.token_hex(4)}@localhost"
        state = self.state_dir
        (state / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf
        (state / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {HOST}:{amqp}\n"
            f"management.tcp.ip = {HOST}\n"
            f"management.tcp.port = {management}\n"
            f"prometheus.tcp.ip = {HOST}\n"
            f"prometheus.tcp.port = {prometheus}\n"
            # Queue counts in the management API refresh every second instead of every 5.
            "collect_statistics_interval = 1000\n"
        )
        # What `rabbitmq-plugins enable --offline` writes; the broker adds the dependencies at
        # boot. Written directly, it saves starting an Erlang VM (1-3 s) per broker.
        (state / "enabled_plugins").write_text(f"[{','.join(self._plugins)}].\n")
        self._env = child_env(
            {
                "HOME": str(state),  # the Erlang cookie, shared with rabbitmqctl
                "RABBITMQ_CONF_ENV_FILE": str(state / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(state / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(state / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(state / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(state / "mnesia"),
                "RABBITMQ_LOG_BASE": str(state / "log"),
                "RABBITMQ_LOGS": "-",  # to stdout, i.e. into our log file
                "RABBITMQ_PID_FILE": str(state / "rabbitmq.pid"),
                "RABBITMQ_NODENAME": node,
                "RABBITMQ_DIST_PORT": str(dist),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1}"
                    f" -kernel inet_dist_listen_min {dist} -kernel inet_dist_listen_max {dist}"
                ),
                "ERL_EPMD_ADDRESS": HOST,
                "ERL_EPMD_PORT": str(epmd_port),
            },
            drop_prefixes=("RABBITMQ_", "ERL_"),
        )
        epmd = find_program("epmd", "erlang-base")
        server = find_program("rabbitmq-server", "rabbitmq-server", dirs=[_BIN_DIR])
        self._rabbitmqctl = find_program("rabbitmqctl", "rabbitmq-server", dirs=[_BIN_DIR])
        self._epmd = self._spawn([epmd, "-port", str(epmd_port), "-address", HOST], env=self._env)
        self._wait_until(lambda: _epmd_answers(epmd_port), 10.0, "epmd")
        self._script = self._spawn([server], env=self._env)
        return RabbitMQInfo(
            host=HOST,
            port=amqp,
            url=f"amqp://{_USER}:{_PASSWORD}@{HOST}:{amqp}/%2F",
            management_port=management,
            prometheus_port=prometheus,
            dist_port=dist,
            epmd_port=epmd_port,
            node=node,
            username=_USER,
            password=_PASSWORD,
        )

    def _ready(self, info: RabbitMQInfo) -> bool:
        if self._beam is None and self._script is not None:
            # The script waits on the VM (to turn signals into a clean stop): find that child.
            beams = [p for p in procs.descendants([self._script]) if p.exe_name() == "beam.smp"]
            self._beam = min(beams, default=None)
        ports = (info.port, info.management_port, info.prometheus_port)
        return self._beam is not None and all(accepts_tcp(port) for port in ports)

    def _graceful_stop(self) -> None:
        # The CLI is an Erlang node too: a fresh distribution port for each call.
        port = str(free_port())
        cli_env = {
            **self._env,
            "RABBITMQ_CTL_DIST_PORT_MIN": port,
            "RABBITMQ_CTL_DIST_PORT_MAX": port,
        }
        argv = [self._rabbitmqctl, "-n", self.info.node, "shutdown"]
        if self._run(argv, env=cli_env, timeout=self.stop_timeout) != 0:
            self._main().signal(signal.SIGTERM)  # the VM stops cleanly on SIGTERM too

    def _main(self) -> ProcessId:
        return self._beam or self._script or super()._main()

    def _essential(self) -> list[ProcessId]:
        # Before the broker is spawned there is only epmd to watch.
        watched = [self._script or self._epmd, self._beam]
        return [process for process in watched if process is not None]

    def _strays(self) -> set[ProcessId]:
        # An epmd the VM or the CLI started on our port if ours was gone: found by its port.
        if self._info is None:
            return set()
        listeners = procs.listening_on(self._info.epmd_port)
        return {process for process in listeners if process.exe_name() == "epmd"}


def _epmd_answers(port: int) -> bool:
    """True once epmd answers a NAMES request (a bare connect would log "partial packet")."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"\x00\x01n")  # 2-byte length, then EPMD_NAMES_REQ
            # The reply starts with epmd's own port (4 bytes), then the (empty) list of nodes.
            return len(sock.recv(4, socket.MSG_WAITALL)) == 4
    except OSError:
        return False
