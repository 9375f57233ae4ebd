"""Fakes for tests: a machine described by what it lacks, and a local stack."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from interfaces.tui.prereqs import Probes
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


def fake_probes(
    *,
    missing_binaries: Collection[str] = (),
    missing_modules: Collection[str] = (),
    busy_ports: Collection[int] = (),
    environ: Mapping[str, str] | None = None,
) -> Probes:
    def find_binary(name: str, extra_dirs: Sequence[str]) -> str | None:
        return None if name in missing_binaries else f"/usr/bin/{name}"

    def module_version(module: str, distribution: str) -> str:
        if module in missing_modules:
            raise ModuleNotFoundError(f"No module named '{module}'")
        return "1.2.3"

    def probe_port(host: str, port: int) -> str | None:
        return "in use" if port in busy_ports else None

    return Probes(find_binary, module_version, probe_port, dict(environ or {}))


class FakeStack:
    """A local stack that starts instantly (or fails at `fail_at`), for the app's tests."""

    def __init__(self, *, running: bool = False, fail_at: str | None = None) -> None:
        self.running = running
        self.fail_at = fail_at
        self.calls: list[str] = []

    def status(self) -> StackStatus:
        state = ComponentState.RUNNING if self.running else ComponentState.STOPPED
        components = tuple(ComponentStatus(name, state) for name in FAKE_COMPONENTS)
        return StackStatus("local", self.running, components, FAKE_ENDPOINTS, "/fake/state")

    def up(self, progress: ProgressCallback | None = None) -> StackStatus:
        self.calls.append("up")
        for name in FAKE_COMPONENTS:
            if progress:
                progress(Progress(name, ComponentState.STARTING, 0.0))
            if name == self.fail_at:
                raise LaunchError(name, "exited with status 1", "line 1\nFATAL: broken config")
            if progress:
                progress(Progress(name, ComponentState.RUNNING, 0.1, "healthy"))
        self.running = True
        return self.status()

    def down(self, progress: ProgressCallback | None = None, *, purge: bool = False) -> DownReport:
        self.calls.append("down")
        for name in reversed(FAKE_COMPONENTS):
            if progress:
                progress(Progress(name, ComponentState.STOPPED, 0.1))
        self.running = False
        return DownReport(stopped=FAKE_COMPONENTS, already_gone=())


FAKE_COMPONENTS = ("rabbitmq", "postgres", "gateway")
FAKE_ENDPOINTS = Endpoints(
    gateway_grpc="127.0.0.1:1",
    gateway_http="http://127.0.0.1:2",
    read_model_grpc="127.0.0.1:3",
    read_model_http="http://127.0.0.1:4",
)
