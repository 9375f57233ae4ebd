"""What the launcher offers its front ends (the `observatory` CLI and the TUI's launcher view).

The contract only: data types and the `Stack` protocol. `tools.launcher.stack.LocalStack`
implements it for the embedded local stack; the TUI's widget tests use a fake.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class ComponentState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"  # health check passes
    RESTARTING = "restarting"  # crashed; the supervisor restarts it after a backoff
    FAILED = "failed"  # did not become healthy; `detail` and `log_tail` say why
    STOPPING = "stopping"
    EXTERNAL = "external"  # remote mode: not ours, only probed


@dataclass(frozen=True)
class ComponentStatus:
    name: str  # "rabbitmq", "postgres", "redis", "mongo", "prometheus", "alertmanager",
    # "gateway", "processor-1".. "processor-N", "metrics_engine", "read_model"
    state: ComponentState
    pid: int | None = None
    ports: tuple[int, ...] = ()
    restarts: int = 0
    since_s: float = 0.0  # seconds in this state
    detail: str = ""  # one line for humans: "healthy", "exited with status 1, retry in 4 s"
    log_path: str = ""
    log_tail: str = ""  # filled for FAILED / RESTARTING


@dataclass(frozen=True)
class Endpoints:
    """Where the front ends connect; the same fields for the local stack and a remote one."""

    gateway_grpc: str  # host:port
    gateway_http: str  # http://host:port
    read_model_grpc: str
    read_model_http: str
    # Web UIs a user may open, name -> URL ("gateway API docs", "RabbitMQ management", ...).
    web_uis: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackStatus:
    mode: str  # "local" or "remote"
    running: bool  # every component RUNNING (or EXTERNAL and reachable)
    components: tuple[ComponentStatus, ...]
    endpoints: Endpoints
    state_dir: str = ""


@dataclass(frozen=True)
class Progress:
    """One step of `up` or `down`, as it happens."""

    component: str
    state: ComponentState
    elapsed_s: float  # since this component's step began
    detail: str = ""
    log_tail: str = ""  # on FAILED


ProgressCallback = Callable[[Progress], None]


class LaunchError(RuntimeError):
    """`up` failed: which component, why, and the tail of its log."""

    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail


@dataclass(frozen=True)
class DownReport:
    stopped: tuple[str, ...]  # components stopped by us
    already_gone: tuple[str, ...]  # recorded but not running (crashed, killed): reported
    purged: bool = False


class Stack(Protocol):
    def status(self) -> StackStatus: ...

    def up(self, progress: ProgressCallback | None = None) -> StackStatus:
        """Starts what is not running (idempotent); blocks until healthy or raises LaunchError."""
        ...

    def down(self, progress: ProgressCallback | None = None, *, purge: bool = False) -> DownReport:
        """Stops exactly what the launcher started (by PID and start time)."""
        ...
