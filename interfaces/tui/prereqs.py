"""Prerequisite checks for running the observatory locally.

Pure logic: every look at the system goes through the functions in `Probes`, so tests pass fakes
and the real implementations live in `system.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from interfaces.tui.ports import HOST, LOCAL_PORTS, PortSpec, resolve_port


class Status(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # required: the stack cannot run without it
    WARNING = "warning"  # the stack may run, but something needs a look first


# Plain-text markers, so the status reads without colours.
MARKERS: Mapping[Status, str] = {
    Status.OK: "[ok]",
    Status.MISSING: "[missing]",
    Status.WARNING: "[warn]",
}


@dataclass(frozen=True)
class Fix:
    """One command that fixes (or helps diagnose) a problem."""

    label: str
    command: str
    note: str = ""

    def as_line(self) -> str:
        # The note goes after `#` so the line still pastes into a shell as-is.
        suffix = f"  # {self.note}" if self.note else ""
        return f"{self.label}: {self.command}{suffix}"


@dataclass(frozen=True)
class Check:
    """Outcome of one check."""

    group: str
    name: str
    purpose: str
    status: Status
    detail: str
    fixes: tuple[Fix, ...] = ()
    apt_package: str | None = None  # set when missing, for the combined install command

    @property
    def fix(self) -> str | None:
        """The primary fix command, if any."""
        return self.fixes[0].command if self.fixes else None


# Injectable look-ups; each is the only place its kind of check touches the system.
# (name, extra glob dirs) -> absolute path, or None when not found.
FindBinary = Callable[[str, Sequence[str]], str | None]
# (import name, distribution) -> version; raises (usually ImportError) when not importable.
ModuleVersion = Callable[[str, str], str]
# (host, port) -> None when free, else a short reason such as "in use".
ProbePort = Callable[[str, int], str | None]


@dataclass(frozen=True)
class Probes:
    find_binary: FindBinary
    module_version: ModuleVersion
    probe_port: ProbePort
    environ: Mapping[str, str]


@dataclass(frozen=True)
class BinarySpec:
    name: str
    purpose: str
    apt_package: str
    extra_dirs: tuple[str, ...] = ()  # globs searched after PATH
    alternatives: tuple[Fix, ...] = ()


@dataclass(frozen=True)
class ModuleSpec:
    module: str
    distribution: str
    purpose: str


GROUP_BUILD = "Build"
GROUP_SERVERS = "Servers"
GROUP_PYTHON = "Python packages"
GROUP_PORTS = f"Free ports on {HOST}"

# Debian keeps RabbitMQ in /usr/sbin (often not on a user's PATH) and PostgreSQL's server
# tools in a versioned directory that is never on PATH.
_SBIN = ("/usr/sbin",)
_PG_BIN = ("/usr/lib/postgresql/*/bin",)

BAZEL = BinarySpec(
    "bazel",
    "builds, tests and runs every part of the observatory",
    "bazel-bootstrap",
    alternatives=(Fix("or", "./bazelw", note="the wrapper installs Bazel on first run"),),
)

SERVER_BINARIES: tuple[BinarySpec, ...] = (
    BinarySpec("rabbitmq-server", "RabbitMQ, the job queues", "rabbitmq-server", _SBIN),
    BinarySpec("rabbitmqctl", "RabbitMQ control (readiness, users)", "rabbitmq-server", _SBIN),
    BinarySpec(
        "rabbitmq-plugins", "enables RabbitMQ management, prometheus", "rabbitmq-server", _SBIN
    ),
    BinarySpec("redis-server", "Redis, the live aggregates", "redis-server", _SBIN),
    BinarySpec("initdb", "creates the PostgreSQL cluster (job state)", "postgresql", _PG_BIN),
    BinarySpec("pg_ctl", "starts/stops PostgreSQL (job state)", "postgresql", _PG_BIN),
    BinarySpec("prometheus", "Prometheus, metrics and alert rules", "prometheus"),
    BinarySpec("promtool", "validates Prometheus config and rules", "prometheus"),
    BinarySpec(
        "prometheus-alertmanager", "Alertmanager, routes the alerts", "prometheus-alertmanager"
    ),
    BinarySpec("amtool", "validates the Alertmanager config", "prometheus-alertmanager"),
    BinarySpec("tmux", "terminal sessions: local stack, UI tests", "tmux"),
)

PYTHON_MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec("grpc", "grpcio", "gRPC runtime"),
    ModuleSpec("grpc_tools", "grpcio-tools", "protobuf/gRPC code generation"),
    ModuleSpec("google.protobuf", "protobuf", "protobuf messages"),
    ModuleSpec("pika", "pika", "RabbitMQ client"),
    ModuleSpec("pymongo", "pymongo", "MongoDB-wire client"),
    ModuleSpec("psycopg", "psycopg", "PostgreSQL client"),
    ModuleSpec("redis", "redis", "Redis client"),
    ModuleSpec("prometheus_client", "prometheus-client", "metrics exposition"),
    ModuleSpec("urwid", "urwid", "this terminal UI"),
    ModuleSpec("nx_27017", "nx-27017", "MongoDB-wire server (event documents)"),
)

# Bazel resolves the locked Python deps itself, so this is the one command that fixes them all.
PYTHON_FIX = Fix("fix", "./bazelw run //interfaces:tui", note="Bazel provides the Python deps")

# How far above a busy port to look for a free one to suggest.
_PORT_SEARCH_SPAN = 20


def apt_install(packages: Iterable[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def check_binary(spec: BinarySpec, find_binary: FindBinary, group: str = GROUP_SERVERS) -> Check:
    path = find_binary(spec.name, spec.extra_dirs)
    if path is not None:
        return Check(group, spec.name, spec.purpose, Status.OK, path)
    where = " or ".join(("PATH", *spec.extra_dirs))
    return Check(
        group,
        spec.name,
        spec.purpose,
        Status.MISSING,
        f"not found in {where}",
        fixes=(Fix("fix", apt_install([spec.apt_package])), *spec.alternatives),
        apt_package=spec.apt_package,
    )


def check_module(spec: ModuleSpec, module_version: ModuleVersion) -> Check:
    try:
        version = module_version(spec.module, spec.distribution)
    except Exception as exc:  # any import-time failure means "not usable"
        reason = str(exc) or type(exc).__name__
        return Check(
            GROUP_PYTHON,
            spec.module,
            spec.purpose,
            Status.MISSING,
            f"cannot import: {reason}",
            fixes=(PYTHON_FIX,),
        )
    return Check(
        GROUP_PYTHON, spec.module, spec.purpose, Status.OK, f"{spec.distribution} {version}"
    )


def check_ports(
    specs: Sequence[PortSpec], probe_port: ProbePort, environ: Mapping[str, str]
) -> list[Check]:
    resolved: list[tuple[PortSpec, int | str]] = []
    for spec in specs:
        try:
            resolved.append((spec, resolve_port(spec, environ)))
        except ValueError as exc:
            resolved.append((spec, str(exc)))
    # Never suggest a port another part of the stack is about to use (grows with suggestions).
    taken = {port for _, port in resolved if isinstance(port, int)}
    return [
        _check_port(spec, port, probe_port, taken, environ)
        if isinstance(port, int)
        else _bad_override(spec, port)
        for spec, port in resolved
    ]


def _bad_override(spec: PortSpec, problem: str) -> Check:
    return Check(
        GROUP_PORTS,
        spec.env_var,
        spec.service,
        Status.WARNING,
        problem,
        fixes=(Fix("fix", f"unset {spec.env_var}", note=f"back to {spec.default}"),),
    )


def _check_port(
    spec: PortSpec,
    port: int,
    probe_port: ProbePort,
    taken: set[int],
    environ: Mapping[str, str],
) -> Check:
    name = f"port {port}"
    source = f" (from {spec.env_var})" if environ.get(spec.env_var, "").strip() else ""
    problem = probe_port(HOST, port)
    if problem is None:
        return Check(GROUP_PORTS, name, spec.service, Status.OK, f"free for {spec.service}{source}")
    spare = _find_spare_port(port, probe_port, taken)
    if spare is not None:
        taken.add(spare)  # two busy ports must not both be told to move to the same one
    return Check(
        GROUP_PORTS,
        name,
        spec.service,
        Status.WARNING,
        f"{problem}{source}",
        fixes=(
            Fix("see who holds it", f"ss -ltnp 'sport = :{port}'"),
            Fix(
                "or move it",
                f"export {spec.env_var}={spare if spare is not None else '<free port>'}",
            ),
        ),
    )


def _find_spare_port(port: int, probe_port: ProbePort, taken: set[int]) -> int | None:
    for candidate in range(port + 1, min(port + _PORT_SEARCH_SPAN, 65535) + 1):
        if candidate not in taken and probe_port(HOST, candidate) is None:
            return candidate
    return None


def run_checks(probes: Probes) -> list[Check]:
    """Run every check, in display order."""
    return [
        check_binary(BAZEL, probes.find_binary, GROUP_BUILD),
        *(check_binary(spec, probes.find_binary) for spec in SERVER_BINARIES),
        *(check_module(spec, probes.module_version) for spec in PYTHON_MODULES),
        *check_ports(LOCAL_PORTS, probes.probe_port, probes.environ),
    ]


def missing_packages(checks: Iterable[Check]) -> list[str]:
    """Debian packages of the missing checks, each once, in check order."""
    packages: dict[str, None] = {}  # dict keeps first-seen order
    for check in checks:
        if check.status is Status.MISSING and check.apt_package:
            packages.setdefault(check.apt_package)
    return list(packages)


def combined_install_command(checks: Iterable[Check]) -> str | None:
    """One `apt-get install` for everything missing, or None when nothing is."""
    packages = missing_packages(checks)
    return apt_install(packages) if packages else None


def required_ok(checks: Iterable[Check]) -> bool:
    """True when nothing required is missing (warnings do not count)."""
    return all(check.status is not Status.MISSING for check in checks)


def summary(checks: Sequence[Check]) -> str:
    """One line: what is missing and what needs a look, or that all is well."""
    missing = [c.name for c in checks if c.status is Status.MISSING]
    warnings = [c.name for c in checks if c.status is Status.WARNING]
    if not missing and not warnings:
        return f"all {len(checks)} checks passed"
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {', '.join(missing)}")
    if warnings:
        noun = "warning" if len(warnings) == 1 else "warnings"
        parts.append(f"{len(warnings)} {noun}: {', '.join(warnings)}")
    return "; ".join(parts)
