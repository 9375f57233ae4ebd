"""Fake system look-ups for tests: a machine described by what it lacks."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from interfaces.tui.prereqs import Probes


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
