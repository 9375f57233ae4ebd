"""Where the local stack keeps its state, and the state file (`stack.json`) both sides read.

The supervisor writes `stack.json` (atomically) on every change; the CLI and the TUI only read
it. Each process is recorded as (pid, start time) so a recycled PID is never taken for ours.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tools.launcher.api import ComponentState
from tools.testing.servers.procs import ProcessId

STATE_FILE = "stack.json"
# Proves a directory is ours before `down --purge` deletes it.
MARKER_FILE = ".observatory-state"
SUPERVISOR_LOG = "supervisor.log"


def state_dir(environ: Mapping[str, str]) -> Path:
    """$OBSERVATORY_STATE_DIR, else ${XDG_STATE_HOME:-~/.local/state}/observatory."""
    if explicit := environ.get("OBSERVATORY_STATE_DIR", "").strip():
        return Path(explicit).expanduser().absolute()
    xdg = environ.get("XDG_STATE_HOME", "").strip()
    base = (
        Path(xdg).expanduser()
        if xdg
        else Path(environ.get("HOME", "~")).expanduser() / (".local/state")
    )
    return (base / "observatory").absolute()


class Phase:
    """The stack as a whole, as the supervisor sees it."""

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"  # start-up failed; the supervisor stops what it started and exits
    STOPPING = "stopping"
    STOPPED = "stopped"


class Outcome:
    """What `down` found for a component (set when the stack is stopped)."""

    NONE = ""
    STOPPED = "stopped"
    ALREADY_GONE = "already_gone"


@dataclass(frozen=True)
class ComponentRecord:
    name: str
    state: str = ComponentState.STOPPED.value
    pid: int | None = None
    start_time: int | None = None
    # Every process of the component seen so far (pid, start time), e.g. epmd and beam.smp.
    processes: tuple[tuple[int, int], ...] = ()
    ports: tuple[int, ...] = ()
    restarts: int = 0
    since: float = 0.0  # wall-clock time this state began
    step_began: float = 0.0  # wall-clock time the current start (or stop) began
    detail: str = ""
    log_path: str = ""
    log_tail: str = ""
    outcome: str = Outcome.NONE

    @property
    def main(self) -> ProcessId | None:
        if self.pid is None or self.start_time is None:
            return None
        return ProcessId(self.pid, self.start_time)

    def process_ids(self) -> set[ProcessId]:
        found = {ProcessId(pid, start) for pid, start in self.processes}
        if self.main is not None:
            found.add(self.main)
        return found


@dataclass(frozen=True)
class StackRecord:
    supervisor_pid: int
    supervisor_start_time: int
    started_at: float
    processors: int
    ports: dict[str, int]
    phase: str = Phase.STARTING
    components: tuple[ComponentRecord, ...] = field(default_factory=tuple)

    @property
    def supervisor(self) -> ProcessId:
        return ProcessId(self.supervisor_pid, self.supervisor_start_time)

    def component(self, name: str) -> ComponentRecord | None:
        return next((c for c in self.components if c.name == name), None)

    def with_component(self, record: ComponentRecord) -> StackRecord:
        others = tuple(record if c.name == record.name else c for c in self.components)
        return replace(self, components=others)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackRecord:
        data: dict[str, Any] = json.loads(text)
        components = tuple(
            ComponentRecord(
                **{
                    **c,
                    "processes": tuple((int(p), int(s)) for p, s in c.get("processes", ())),
                    "ports": tuple(c.get("ports", ())),
                }
            )
            for c in data.pop("components", ())
        )
        return cls(**data, components=components)


class StateStore:
    """The state directory: one subdir per component, `stack.json`, the supervisor's log."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def supervisor_log(self) -> Path:
        return self.root / SUPERVISOR_LOG

    def component_dir(self, name: str) -> Path:
        return self.root / name

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MARKER_FILE).touch()

    def is_ours(self) -> bool:
        return (self.root / MARKER_FILE).is_file()

    def read(self) -> StackRecord | None:
        try:
            text = self.state_file.read_text()
        except FileNotFoundError:
            return None
        return StackRecord.from_json(text)

    def write(self, record: StackRecord) -> None:
        """Atomically: a reader sees the old file or the new one, never half of one."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".stack-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(record.to_json())
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
