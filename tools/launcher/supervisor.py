"""The supervisor: a detached process that owns the local stack's processes.

It starts the components wave by wave (each gated on its health), records everything in
stack.json, restarts crashed services with backoff, and on SIGTERM stops everything in reverse
order, noting for each component whether it was stopped or already gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tools.launcher.api import ComponentState
from tools.launcher.plan import STABLE_AFTER_S, Component, restart_delay, waves
from tools.launcher.state import ComponentRecord, Outcome, Phase, StackRecord, StateStore
from tools.testing.servers import Server, ServerError
from tools.testing.servers.procs import ProcessId
from tools.testing.servers.programs import MissingProgramError

log = logging.getLogger("observatory.supervisor")

ServerFactory = Callable[[Component], Server[Any]]
_START_ERRORS = (ServerError, MissingProgramError, OSError, ValueError)
_MONITOR_INTERVAL_S = 0.5
_TRACK_INTERVAL_S = 5.0  # how often new child processes are added to the record
_LOG_TAIL_LINES = 30


@dataclasses.dataclass
class _Live:
    component: Component
    server: Server[Any] | None = None
    crashes_in_a_row: int = 0
    healthy_since: float = 0.0
    restart_at: float | None = None
    restarting: bool = False  # a restart thread is at work


class Supervisor:
    def __init__(
        self,
        store: StateStore,
        parts: Iterable[Component],
        factory: ServerFactory,
        record: StackRecord,
    ) -> None:
        self._store = store
        self._parts = list(parts)
        self._factory = factory
        self._lock = threading.RLock()
        self._record = record
        self._live = {c.name: _Live(c) for c in self._parts}
        self._last_track = 0.0
        # Set (by SIGUSR1, from `up`) to start again the components that failed.
        self.repair_requested = threading.Event()

    # ----- the life cycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """Starts the stack, supervises it until `stop` is set, stops it. Exit status."""
        self._write()
        ok = self._start_all(stop)
        if ok and not stop.is_set():
            self._set_phase(Phase.RUNNING)
            log.info("stack running")
            while not stop.wait(_MONITOR_INTERVAL_S):
                self._monitor()
        if not ok:
            self._set_phase(Phase.FAILED)
        self._stop_all()
        self._set_phase(Phase.STOPPED if ok else Phase.FAILED)
        return 0 if ok else 1

    def _start_all(self, stop: threading.Event) -> bool:
        for wave in waves(self._parts):
            if stop.is_set():
                return True
            threads = [threading.Thread(target=self._start, args=(c.name,)) for c in wave]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            failed = [
                c.name for c in wave if self._rec(c.name).state == ComponentState.FAILED.value
            ]
            if failed:
                log.error("start-up failed: %s", ", ".join(failed))
                return False
        return True

    def _start(self, name: str) -> bool:
        live = self._live[name]
        server = self._factory(live.component)
        self._update(
            name,
            state=ComponentState.STARTING.value,
            step_began=time.time(),
            detail="",
            log_path=str(server.log_path),
            log_tail="",
            pid=None,
            start_time=None,
        )
        with self._lock:
            live.server = server
        try:
            server.start()
        except _START_ERRORS as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            self._update(
                name,
                state=ComponentState.FAILED.value,
                detail=reason,
                log_tail=server.log_tail(_LOG_TAIL_LINES),
                processes=_pairs(server.processes()),
            )
            return False
        main = ProcessId.of(server.pid)
        live.healthy_since = time.monotonic()
        self._update(
            name,
            state=ComponentState.RUNNING.value,
            detail="healthy",
            pid=server.pid,
            start_time=main.start_time if main else None,
            processes=_pairs(server.processes()),
        )
        return True

    def _monitor(self) -> None:
        now = time.monotonic()
        track = now - self._last_track >= _TRACK_INTERVAL_S
        if track:
            self._last_track = now
        if self.repair_requested.is_set():
            self.repair_requested.clear()
            self._schedule_repairs(now)
        for name, live in self._live.items():
            server = live.server
            with self._lock:
                if live.restarting or server is None:
                    continue
            if live.restart_at is not None:
                if now >= live.restart_at:
                    live.restart_at = None
                    live.restarting = True
                    threading.Thread(target=self._restart, args=(name,), daemon=True).start()
                continue
            if self._rec(name).state != ComponentState.RUNNING.value:
                continue
            if server.crashed():
                self._on_crash(live, server)
            elif track:
                self._update(name, processes=_pairs(server.processes()))

    def _schedule_repairs(self, now: float) -> None:
        for name, live in self._live.items():
            record = self._rec(name)
            if record.state != ComponentState.FAILED.value or live.restarting:
                continue
            log.info("%s: restart requested", name)
            live.crashes_in_a_row = 0
            live.restart_at = now
            self._update(
                name,
                state=ComponentState.RESTARTING.value,
                detail="restart requested by `up`",
                restarts=record.restarts + 1,
                pid=None,
            )

    def _on_crash(self, live: _Live, server: Server[Any]) -> None:
        name = live.component.name
        reason = server.exit_reason() or "exited"
        tail = server.log_tail(_LOG_TAIL_LINES)
        with contextlib.suppress(ServerError):
            server.stop()  # whatever the crash left behind (children), and reap it
        log.warning("%s crashed: %s", name, reason)
        if not live.component.restartable:
            self._update(
                name,
                state=ComponentState.FAILED.value,
                detail=f"{reason}; a backend is not restarted: run `down` then `up`",
                log_tail=tail,
            )
            return
        if time.monotonic() - live.healthy_since >= STABLE_AFTER_S:
            live.crashes_in_a_row = 0
        self._schedule_restart(live, reason, log_tail=tail, pid=None)

    def _schedule_restart(self, live: _Live, why: str, **changes: Any) -> None:
        """One more crash in a row: RESTARTING, due after the backoff for that many."""
        live.crashes_in_a_row += 1
        delay = restart_delay(live.crashes_in_a_row)
        live.restart_at = time.monotonic() + delay
        name = live.component.name
        self._update(
            name,
            state=ComponentState.RESTARTING.value,
            detail=f"{why}, restart in {delay:.0f} s",
            restarts=self._rec(name).restarts + 1,
            **changes,
        )

    def _restart(self, name: str) -> None:
        live = self._live[name]
        try:
            if not self._start(name):
                failed = live.server
                if failed is not None:
                    with contextlib.suppress(ServerError):
                        failed.stop()
                if not live.component.restartable:
                    return  # stays FAILED, with why, until the next `up`
                self._schedule_restart(live, self._rec(name).detail)
        finally:
            live.restarting = False

    def _stop_all(self) -> None:
        if self._record.phase != Phase.FAILED:
            self._set_phase(Phase.STOPPING)
        for wave in reversed(waves(self._parts)):
            threads = [threading.Thread(target=self._stop, args=(c.name,)) for c in wave]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    def _stop(self, name: str) -> None:
        live = self._live[name]
        server = live.server
        if server is None:
            return
        was_running = server.alive()
        if was_running:
            self._update(
                name, state=ComponentState.STOPPING.value, detail="", step_began=time.time()
            )
        try:
            server.stop()
        except ServerError as error:
            log.error("%s: %s", name, error)
        if was_running:
            self._update(
                name, state=ComponentState.STOPPED.value, detail="stopped", outcome=Outcome.STOPPED
            )
        elif self._rec(name).state == ComponentState.FAILED.value:
            self._update(name, outcome=Outcome.ALREADY_GONE)  # keeps why it failed
        else:
            self._update(
                name,
                state=ComponentState.STOPPED.value,
                detail="was not running",
                outcome=Outcome.ALREADY_GONE,
            )

    # ----- the record -------------------------------------------------------------------------

    def _rec(self, name: str) -> ComponentRecord:
        with self._lock:
            found = self._record.component(name)
        assert found is not None  # every component is recorded at start-up
        return found

    def _update(self, name: str, **changes: Any) -> None:
        with self._lock:
            current = self._rec(name)
            if "state" in changes and changes["state"] != current.state:
                changes["since"] = time.time()
            self._record = self._record.with_component(dataclasses.replace(current, **changes))
            self._write()

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            self._record = dataclasses.replace(self._record, phase=phase)
            self._write()

    def _write(self) -> None:
        with self._lock:
            self._store.write(self._record)


def _pairs(processes: Iterable[ProcessId]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((p.pid, p.start_time) for p in processes if p.running()))


def initial_record(
    parts: Iterable[Component], ports: dict[str, int], processors: int
) -> StackRecord:
    me = ProcessId.of(os.getpid())
    assert me is not None  # this process exists
    return StackRecord(
        supervisor_pid=me.pid,
        supervisor_start_time=me.start_time,
        started_at=time.time(),
        processors=processors,
        ports=ports,
        components=tuple(
            ComponentRecord(name=c.name, ports=c.ports, since=time.time()) for c in parts
        ),
    )
