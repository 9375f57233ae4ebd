"""The life cycle every throwaway server shares: start, wait until ready, detect death, stop.

A subclass says how to configure and launch its program (`_launch`), when it is ready
(`_ready`) and, if SIGTERM is not right, how to stop it gracefully (`_graceful_stop`). This
class owns the processes: each one spawned goes into its own session, every descendant is
recorded by (pid, start time), and `stop()` kills exactly those, whatever state they are in.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import shlex
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, TypeVar

from tools.testing.servers import procs, registry
from tools.testing.servers.procs import ProcessId

# How long force-killed processes get to disappear, and children to be reaped.
_KILL_WAIT_SECONDS = 10.0
# Starts tried when another process took one of our ports between picking and binding.
_PORT_RACE_ATTEMPTS = 3


class ServerError(RuntimeError):
    """A server did not start, died while starting, or could not be stopped."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a started server listens. `url` is what its client library takes."""

    host: str
    port: int
    url: str


InfoT = TypeVar("InfoT", bound=ServerInfo)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"


class Server(ABC, Generic[InfoT]):
    """One throwaway server whose state (config, data, log) lives under `state_dir`."""

    name: ClassVar[str]
    ready_timeout: ClassVar[float] = 15.0
    # Budget for the graceful stop before everything left is killed.
    stop_timeout: ClassVar[float] = 10.0
    # Set by a subclass given fixed ports: a taken port stays taken, so retrying is pointless.
    fixed_ports: bool = False

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / f"{self.name}.log"
        self.startup_seconds: float | None = None
        self._state = _State.NEW
        self._info: InfoT | None = None
        self._spawned: list[tuple[subprocess.Popen[bytes], ProcessId]] = []
        self._tracked: set[ProcessId] = set()
        self._logs: list[IO[bytes]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.value} log={self.log_path}>"

    # ----- public API -------------------------------------------------------------------------

    @property
    def info(self) -> InfoT:
        if self._info is None:
            raise ServerError(f"{self.name} has not been started")
        return self._info

    @property
    def pid(self) -> int:
        """The PID of the server process proper (what a crash would take down)."""
        return self._main().pid

    def processes(self) -> frozenset[ProcessId]:
        """Every process started for this server that is known so far, dead or alive."""
        self._track()
        return frozenset(self._tracked)

    def start(self) -> InfoT:
        """Starts the server and returns once it accepts connections (or raises ServerError)."""
        if self._state is not _State.NEW:
            raise ServerError(f"{self!r}: start() can be called once")
        began = time.monotonic()
        for attempt in range(1, _PORT_RACE_ATTEMPTS + 1):
            self._state = _State.STARTING
            registry.register(self)
            log_start = self._log_size()
            try:
                info = self._launch()
                self._info = info
                ready = functools.partial(self._ready, info)
                self._wait_until(ready, self.ready_timeout, "it to be ready")
                break
            except BaseException as error:
                # Keep the startup error; a failure to clean up is noted in the log instead.
                try:
                    self._force_stop()
                except ServerError as cleanup_error:
                    self._note(str(cleanup_error))
                # A free port picked a moment ago can be taken by another test's server before
                # ours binds it: start again on new ports rather than fail the test.
                lost_race = isinstance(error, ServerError) and self._port_taken_since(log_start)
                if not lost_race or self.fixed_ports or attempt == _PORT_RACE_ATTEMPTS:
                    raise
                self._note(f"a port was taken before the server bound it; retry {attempt}")
                self._spawned, self._tracked = [], set()
        self._track()
        self.startup_seconds = time.monotonic() - began
        self._state = _State.RUNNING
        return info

    def stop(self) -> None:
        """Stops exactly the processes this server started. Safe to call again, or after a crash."""
        if self._state in (_State.NEW, _State.STOPPED):
            self._state = _State.STOPPED
            return
        try:
            if self._essential_running():
                try:
                    self._graceful_stop()
                except (OSError, subprocess.SubprocessError, ServerError) as error:
                    self._note(f"graceful stop failed: {error}")
                procs.wait_gone(self._essential(), self.stop_timeout)
        finally:
            self._force_stop()

    def kill(self) -> None:
        """Like `stop()` without the graceful part: SIGKILL to everything, at once."""
        if self._state in (_State.NEW, _State.STOPPED):
            self._state = _State.STOPPED
            return
        self._force_stop()

    def alive(self) -> bool:
        """False once the server process has exited (crashed, killed or stopped)."""
        return self._state in (_State.STARTING, _State.RUNNING) and self._essential_running()

    def crashed(self) -> bool:
        """True if the server went down without `stop()` being called."""
        return self._state in (_State.STARTING, _State.RUNNING) and not self._essential_running()

    def exit_reason(self) -> str | None:
        """How the main process ended ("killed by SIGKILL"), if it did and was our child."""
        main = self._main() if self._spawned else None
        for child, process in self._spawned:
            if process != main:
                continue
            try:  # WNOWAIT: look without reaping, so the PID stays reserved until stop()
                status = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None
            if status is None:
                return None
            if status.si_code == os.CLD_EXITED:
                return f"exited with status {status.si_status}"
            return f"killed by {signal.Signals(status.si_status).name}"
        return None

    def log_tail(self, lines: int = 50) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                start = max(0, log.tell() - 512 * lines)  # plenty for `lines` log lines
                log.seek(start)
                text_lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError as error:
            return f"(no log: {error})"
        if start > 0:
            text_lines = text_lines[1:]  # the first one is likely cut
        return "\n".join(text_lines[-lines:])

    def log_report(self, lines: int = 50) -> str:
        """The log tail under a header naming the server and the log file."""
        header = f"===== {self.name} log tail: last {lines} lines of {self.log_path} ====="
        return f"{header}\n{self.log_tail(lines)}"

    # ----- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def _launch(self) -> InfoT:
        """Writes the configuration, spawns the program(s) with `_spawn`, returns the info."""

    @abstractmethod
    def _ready(self, info: InfoT) -> bool:
        """True once the server serves clients. Called repeatedly until `ready_timeout`."""

    def _graceful_stop(self) -> None:
        self._main().signal(signal.SIGTERM)

    def _main(self) -> ProcessId:
        if not self._spawned:
            raise ServerError(f"{self.name} has not been started")
        return self._spawned[0][1]

    def _essential(self) -> list[ProcessId]:
        """The processes whose exit means the server is down."""
        return [self._main()] if self._spawned else []

    def _strays(self) -> set[ProcessId]:
        """Processes of ours that left our process tree and must be found another way."""
        return set()

    def _cleanup(self) -> None:
        """Removes what lives outside `state_dir`, once every process is gone."""

    # ----- helpers for subclasses -------------------------------------------------------------

    def _spawn(self, argv: Sequence[str], *, env: Mapping[str, str]) -> ProcessId:
        """Starts a long-running process in its own session, output appended to the log."""
        log = self.log_path.open("ab")
        self._logs.append(log)
        # A SIGTERM/SIGINT handler raising mid-spawn would leave the child unrecorded: running
        # and never stopped. Held back, it raises once the child is recorded.
        with procs.signals_deferred():
            child = subprocess.Popen(
                list(argv), **self._logged(log, argv, env), start_new_session=True
            )
            # Read before anyone can reap the child: an unreaped child keeps its /proc entry.
            process = ProcessId.of(child.pid) or ProcessId(child.pid, -1)
            self._spawned.append((child, process))
            self._tracked.add(process)
        return process

    def _run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> int:
        """Runs a short helper command (initdb, rabbitmqctl...) with output in the log."""
        with self.log_path.open("ab") as log:
            try:
                result = subprocess.run(
                    list(argv), **self._logged(log, argv, env), timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired as error:
                message = f"{self.name}: {shlex.join(argv)} did not finish in {timeout:g}s"
                raise ServerError(message) from error
        return result.returncode

    def _logged(
        self, log: IO[bytes], argv: Sequence[str], env: Mapping[str, str]
    ) -> dict[str, Any]:
        """Writes the command line to the log; the subprocess arguments of a child whose output
        goes there, in the state dir, with `env` and no input."""
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        return {
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "env": dict(env),
            "cwd": self.state_dir,
        }

    def _run_checked(self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> None:
        status = self._run(argv, env=env, timeout=timeout)
        if status != 0:
            raise ServerError(
                f"{self.name}: {shlex.join(argv)} exited with {status}\n{self.log_report()}"
            )

    def _wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Polls `condition` for up to `timeout` seconds; fails early if the server exits."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self._essential_running():
                raise ServerError(
                    f"{self.name} exited while waiting for {what}\n{self.log_report()}"
                )
            with contextlib.suppress(OSError):
                if condition():
                    return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"{self.name}: gave up after {timeout:g}s waiting for {what}\n"
                    f"{self.log_report()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _port_taken_since(self, offset: int) -> bool:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace").lower()
        except OSError:
            return False
        return "eaddrinuse" in text or "address already in use" in text

    def _note(self, message: str) -> None:
        with contextlib.suppress(OSError), self.log_path.open("a") as log:
            log.write(f"[tools.testing.servers] {message}\n")

    # ----- internals --------------------------------------------------------------------------

    def _essential_running(self) -> bool:
        essential = self._essential()
        return bool(essential) and all(process.running() for process in essential)

    def _track(self) -> None:
        self._tracked |= procs.descendants(self._tracked)

    def _force_stop(self) -> None:
        # Record children forked since start while their parents still run, then kill them all.
        self._track()
        targets = self._tracked | self._strays()
        for child, _ in self._spawned:
            # Safe by number: the group leader is our unreaped child, so its PID is not reused.
            targets |= procs.group_members(child.pid)
        procs.kill_all(targets)
        survivors = procs.wait_gone(targets, _KILL_WAIT_SECONDS)
        for child, _ in self._spawned:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_KILL_WAIT_SECONDS)
        for log in self._logs:
            log.close()
        self._logs.clear()
        try:
            self._cleanup()
        finally:
            registry.unregister(self)
            self._state = _State.STOPPED
        if survivors:
            raise ServerError(f"{self.name}: processes survived SIGKILL: {sorted(survivors)}")
