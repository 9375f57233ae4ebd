"""`LocalStack`: the `Stack` contract for the embedded local stack.

The client side only: `up` starts the detached supervisor (tools/launcher/supervise.py) and
follows stack.json; `status` reads it; `down` asks the supervisor to stop and then stops, by
PID and start time, anything recorded that still runs (the supervisor may have been killed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from tools.launcher.api import (
    ComponentState,
    ComponentStatus,
    DownReport,
    Endpoints,
    LaunchError,
    Progress,
    ProgressCallback,
    StackStatus,
)
from tools.launcher.plan import components
from tools.launcher.ports import HOST, conflicts, duplicate_ports, port_uses
from tools.launcher.state import ComponentRecord, Outcome, Phase, StackRecord, StateStore
from tools.testing.servers import procs
from tools.testing.servers.procs import ProcessId
from tools.testing.servers.programs import python_path

# Asks a running supervisor to start again the components that failed.
SIGNAL_REPAIR = signal.SIGUSR1
# The hidden subcommand of the CLI that runs the supervisor (tools/launcher/supervise.py).
SUPERVISE_COMMAND = "_supervise"
UP_TIMEOUT_S = 600.0
# The supervisor stops components one wave at a time, RabbitMQ taking up to ~30 s.
DOWN_TIMEOUT_S = 120.0
_POLL_S = 0.2
_TERM_GRACE_S = 15.0


class LocalStack:
    def __init__(self, store: StateStore, ports: Mapping[str, int], processors: int) -> None:
        self.store = store
        self.ports = dict(ports)
        self.processors = processors

    # ----- status -----------------------------------------------------------------------------

    def status(self) -> StackStatus:
        record = self.store.read()
        if record is None:
            parts = components(self.ports, self.processors)
            statuses = tuple(
                ComponentStatus(c.name, ComponentState.STOPPED, ports=c.ports) for c in parts
            )
            return self._stack_status(statuses, self.ports, running=False)
        supervised = record.supervisor.running()
        statuses = tuple(_component_status(c, supervised) for c in record.components)
        running = (
            supervised
            and record.phase == Phase.RUNNING
            and all(s.state is ComponentState.RUNNING for s in statuses)
        )
        return self._stack_status(statuses, record.ports, running=running)

    def endpoints(self, ports: Mapping[str, int] | None = None) -> Endpoints:
        p = ports or self.ports
        gateway_http = f"http://{HOST}:{p['GATEWAY_HTTP']}"
        read_model_http = f"http://{HOST}:{p['READ_MODEL_HTTP']}"
        return Endpoints(
            gateway_grpc=f"{HOST}:{p['GATEWAY_GRPC']}",
            gateway_http=gateway_http,
            read_model_grpc=f"{HOST}:{p['READ_MODEL_GRPC']}",
            read_model_http=read_model_http,
            web_uis={
                "Gateway API docs": f"{gateway_http}/docs",
                "Read model API docs": f"{read_model_http}/docs",
                "RabbitMQ management": f"http://{HOST}:{p['RABBITMQ_MANAGEMENT']}",
                "Prometheus": f"http://{HOST}:{p['PROMETHEUS']}",
                "Alertmanager": f"http://{HOST}:{p['ALERTMANAGER']}",
            },
        )

    def _stack_status(
        self, statuses: tuple[ComponentStatus, ...], ports: Mapping[str, int], *, running: bool
    ) -> StackStatus:
        return StackStatus(
            mode="local",
            running=running,
            components=statuses,
            endpoints=self.endpoints(ports),
            state_dir=str(self.store.root),
        )

    # ----- up ---------------------------------------------------------------------------------

    def port_problems(self) -> list[str]:
        """Ports configured twice, or taken by a process that is not ours."""
        uses = port_uses(self.ports, self.processors)
        return duplicate_ports(uses) or conflicts(uses, port_taken, port_holders)

    def up(self, progress: ProgressCallback | None = None) -> StackStatus:
        record = self.store.read()
        if record is not None and record.supervisor.running():
            failed = any(c.state == ComponentState.FAILED.value for c in record.components)
            if record.phase == Phase.RUNNING and not failed:
                return self.status()
            if record.phase == Phase.RUNNING:
                # A backend crashed since: the supervisor starts what failed again.
                asked = time.time()
                record.supervisor.signal(SIGNAL_REPAIR)
                return self._follow_up(record.supervisor, progress, repair_asked=asked)
            return self._follow_up(record.supervisor, progress)
        if record is not None:
            # The supervisor is gone (killed, or the machine rebooted): nothing recorded may
            # still hold ports or data before a new one starts.
            self._stop_leftovers(record)
        problems = self.port_problems()
        if problems:
            raise LaunchError("ports", "\n".join(problems))
        supervisor = self._spawn_supervisor()
        return self._follow_up(supervisor, progress)

    def _spawn_supervisor(self) -> ProcessId:
        self.store.create()
        self.store.state_file.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "tools.launcher.main",
            "--state-dir", str(self.store.root), SUPERVISE_COMMAND,
            "--processors", str(self.processors),
            "--ports", json.dumps(self.ports, sort_keys=True),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": python_path()}
        with self.store.supervisor_log.open("ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.store.root,
                start_new_session=True,  # survives the CLI and its terminal
            )
        # Reaps it if it exits while this process lives (a test, the TUI), so no zombie stays.
        threading.Thread(target=child.wait, daemon=True).start()
        process = ProcessId.of(child.pid)
        if process is None:
            raise LaunchError("supervisor", "exited at once", self._supervisor_tail())
        return process

    def _follow_up(
        self,
        supervisor: ProcessId,
        progress: ProgressCallback | None,
        *,
        repair_asked: float | None = None,
    ) -> StackStatus:
        deadline = time.monotonic() + UP_TIMEOUT_S
        seen: dict[str, tuple[str, int]] = {}
        while True:
            record = self._record_of(supervisor)
            if record is not None:
                _report_changes(record, seen, progress)
                states = {c.state for c in record.components}
                if record.phase == Phase.RUNNING and states == {ComponentState.RUNNING.value}:
                    return self.status()
                if record.phase == Phase.RUNNING and repair_asked is None:
                    return self.status()  # something crashed meanwhile: `status` shows it
                if repair_asked is not None and _failed_since(record, repair_asked):
                    raise _launch_error(record)
                if record.phase == Phase.FAILED:
                    procs.wait_gone([supervisor], DOWN_TIMEOUT_S)  # it stops what it started
                    raise _launch_error(record)
            if not supervisor.running():
                raise LaunchError("supervisor", "exited unexpectedly", self._supervisor_tail())
            if time.monotonic() >= deadline:
                raise LaunchError("stack", f"not running after {UP_TIMEOUT_S:g}s; see `status`")
            time.sleep(_POLL_S)

    def _record_of(self, supervisor: ProcessId) -> StackRecord | None:
        with contextlib.suppress(ValueError):  # half-written by an older writer: read again
            record = self.store.read()
            if record is not None and record.supervisor == supervisor:
                return record
        return None

    def _supervisor_tail(self, lines: int = 40) -> str:
        try:
            text = self.store.supervisor_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ----- down -------------------------------------------------------------------------------

    def down(self, progress: ProgressCallback | None = None, *, purge: bool = False) -> DownReport:
        record = self.store.read()
        stopped: list[str] = []
        gone: list[str] = []
        if record is not None:
            supervisor = record.supervisor
            if supervisor.running():
                supervisor.signal(signal.SIGTERM)
                self._follow_down(supervisor, progress)
                if procs.wait_gone([supervisor], 0):
                    supervisor.signal(signal.SIGKILL)
                    procs.wait_gone([supervisor], 10)
            record = self.store.read() or record
            for component in reversed(record.components):
                if component.outcome == Outcome.STOPPED:
                    stopped.append(component.name)
                elif component.outcome == Outcome.ALREADY_GONE:
                    gone.append(component.name)
                elif component.main is not None:
                    # The supervisor did not get to it (it was killed): judge by the process.
                    (stopped if component.main.running() else gone).append(component.name)
            self._stop_leftovers(record)
        purged = False
        if purge and self.store.root.exists():
            if not self.store.is_ours():
                raise LaunchError("down", f"{self.store.root} is not an observatory state dir")
            shutil.rmtree(self.store.root)
            purged = True
        return DownReport(tuple(reversed(stopped)), tuple(reversed(gone)), purged)

    def _follow_down(self, supervisor: ProcessId, progress: ProgressCallback | None) -> None:
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        seen: dict[str, tuple[str, int]] = {}
        current = self._record_of(supervisor)
        if current is not None:
            _report_changes(current, seen, None)  # only what changes from now on is news
        while supervisor.running() and time.monotonic() < deadline:
            record = self._record_of(supervisor)
            if record is not None:
                _report_changes(record, seen, progress)
            time.sleep(_POLL_S)
        record = self._record_of(supervisor)
        if record is not None:
            _report_changes(record, seen, progress)

    def _stop_leftovers(self, record: StackRecord) -> None:
        """SIGTERM, then SIGKILL, to every recorded process (and its children) still running."""
        recorded: set[ProcessId] = set()
        for component in record.components:
            recorded |= component.process_ids()
        targets = procs.descendants(recorded)
        if targets:
            for process in targets:
                process.signal(signal.SIGTERM)
            survivors = procs.wait_gone(targets, _TERM_GRACE_S)
            procs.kill_all(survivors)
            procs.wait_gone(survivors, 10)
        if self.store.state_file.exists():
            stopped = ComponentState.STOPPED.value
            final = dataclasses.replace(
                record,
                phase=Phase.STOPPED,
                components=tuple(dataclasses.replace(c, state=stopped) for c in record.components),
            )
            self.store.write(final)


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def port_holders(port: int) -> list[tuple[int, str]]:
    return [(p.pid, _program_name(p.pid)) for p in procs.listening_on(port)]


def _program_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _component_status(record: ComponentRecord, supervised: bool) -> ComponentStatus:
    state = ComponentState(record.state)
    detail = record.detail
    main = record.main
    if not supervised and state is not ComponentState.STOPPED:
        alive = main is not None and main.running()
        state = ComponentState.FAILED if alive else ComponentState.STOPPED
        detail = (
            "running without its supervisor: run `down`"
            if alive
            else "not running (the supervisor is gone)"
        )
    return ComponentStatus(
        name=record.name,
        state=state,
        pid=record.pid if state is not ComponentState.STOPPED else None,
        ports=record.ports,
        restarts=record.restarts,
        since_s=max(0.0, time.time() - record.since) if record.since else 0.0,
        detail=detail,
        log_path=record.log_path,
        log_tail=record.log_tail
        if state in (ComponentState.FAILED, ComponentState.RESTARTING)
        else "",
    )


def _report_changes(
    record: StackRecord, seen: dict[str, tuple[str, int]], progress: ProgressCallback | None
) -> None:
    for component in record.components:
        key = (component.state, component.restarts)
        if seen.get(component.name) == key:
            continue
        first = component.name not in seen
        seen[component.name] = key
        if first and component.state == ComponentState.STOPPED.value:
            continue  # not started yet: nothing happened to report
        if progress is not None:
            failed = component.state == ComponentState.FAILED.value
            progress(
                Progress(
                    component=component.name,
                    state=ComponentState(component.state),
                    elapsed_s=max(0.0, time.time() - (component.step_began or component.since)),
                    detail=component.detail,
                    log_tail=component.log_tail if failed else "",
                )
            )


def _failed_since(record: StackRecord, moment: float) -> bool:
    return any(
        c.state == ComponentState.FAILED.value and c.since >= moment for c in record.components
    )


def _launch_error(record: StackRecord) -> LaunchError:
    failed = [c for c in record.components if c.state == ComponentState.FAILED.value]
    if not failed:
        return LaunchError("stack", "start-up failed; see the supervisor log")
    first = failed[0]
    return LaunchError(first.name, first.detail, first.log_tail)
