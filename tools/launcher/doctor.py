"""`observatory doctor`: what would stop `up`, each with what to do about it."""

from __future__ import annotations

import importlib.util
import os
from typing import TextIO

from tools.launcher.api import Stack
from tools.launcher.ports import port_uses
from tools.launcher.stack import LocalStack, port_holders, port_taken
from tools.testing.servers.programs import (
    MissingProgramError,
    find_program,
    postgres_bin_dirs,
    search_dirs,
)

# (program names, apt package, extra dirs)
_PROGRAMS: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = (
    (("rabbitmq-server",), "rabbitmq-server", ("/usr/lib/rabbitmq/bin",)),
    (("epmd",), "erlang-base", ()),
    (("postgres",), "postgresql", ()),
    (("redis-server",), "redis-server", ()),
    (("prometheus",), "prometheus", ()),
    (("prometheus-alertmanager", "alertmanager"), "prometheus-alertmanager", ()),
)


def run(stack: Stack, out: TextIO) -> int:
    """Prints one line per check; 0 if `up` can go ahead, 1 if not."""
    if not isinstance(stack, LocalStack):
        status = stack.status()
        for c in status.components:
            print(f"[{'ok' if status.running else 'fail'}] {c.name}: {c.detail}", file=out)
        return 0 if status.running else 1
    problems = 0

    def report(ok: bool, text: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        print(f"[{'ok' if ok else 'fail'}] {text}", file=out)

    for names, package, extra in _PROGRAMS:
        dirs = [*extra, *postgres_bin_dirs(), *search_dirs()]
        try:
            report(True, f"{names[0]}: {find_program(names, package, dirs=dirs)}")
        except MissingProgramError as error:
            report(False, str(error))
    nx = importlib.util.find_spec("nx_27017") is not None
    report(nx, "nx_27017 (MongoDB wire) importable" if nx else "nx_27017: pip install nx-27017")

    root = stack.store.root
    existing = next((p for p in (root, *root.parents) if p.exists()), root)
    writable = os.access(existing, os.W_OK)
    report(writable, f"state dir {root} {'writable' if writable else 'not writable'}")

    record = stack.store.read()
    ours: set[int] = set()
    if record is not None:
        supervised = record.supervisor.running()
        alive = [c.name for c in record.components if c.main is not None and c.main.running()]
        ours = {p for c in record.components for p in c.ports} if alive else set()
        if not supervised and alive:
            report(False, f"stale state: {', '.join(alive)} run without a supervisor: `down`")
        else:
            report(True, f"state: {'running' if supervised else 'stopped'}")
    for use in port_uses(stack.ports, stack.processors):
        if use.port in ours:
            report(True, f"port {use.port} ({use.what}): ours")
        elif port_taken(use.port):
            holders = ", ".join(f"pid {pid} ({name})" for pid, name in port_holders(use.port))
            report(
                False,
                f"port {use.port} ({use.what}) taken by {holders or 'another user'}; "
                f"set {use.env_var}=<free port>",
            )
        else:
            report(True, f"port {use.port} ({use.what}): free")
    return 0 if problems == 0 else 1
