"""The `observatory` command: up | down | status | logs | doctor, over the launcher library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from tools.launcher import doctor
from tools.launcher.api import ComponentState, LaunchError, Progress, Stack, StackStatus
from tools.launcher.factory import stack_from
from tools.launcher.stack import SUPERVISE_COMMAND, LocalStack
from tools.launcher.supervise import supervise

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="observatory",
        description="Start, stop and inspect the observatory's local stack.",
    )
    top.add_argument("--gateway", help="host:port of an existing gateway (remote mode)")
    top.add_argument("--read-model", help="host:port of an existing read model (remote mode)")
    top.add_argument("--state-dir", type=Path, help="default: $OBSERVATORY_STATE_DIR or XDG")
    commands = top.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack (reuses a running one)")
    up.add_argument("--processors", type=int, help="processor replicas (default 2)")
    down = commands.add_parser("down", help="stop what the launcher started")
    down.add_argument("--purge", action="store_true", help="also delete the data")
    commands.add_parser("status", help="one line per component; exit 0/1/3 = up/degraded/down")
    logs = commands.add_parser("logs", help="a component's log (all components if none)")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-n", type=int, default=40, help="lines (default 40)")
    logs.add_argument("-f", "--follow", action="store_true")
    commands.add_parser("doctor", help="check programs, ports and the state dir")
    supervise = commands.add_parser(SUPERVISE_COMMAND)  # hidden: started by `up`
    supervise.add_argument("--processors", type=int, required=True)
    supervise.add_argument("--ports", required=True)
    return top


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    if args.command == SUPERVISE_COMMAND:
        return supervise(args.state_dir, args.processors, json.loads(args.ports))
    try:
        stack = stack_from(
            gateway=args.gateway,
            read_model=args.read_model,
            processors=getattr(args, "processors", None),
            state=args.state_dir,
        )
    except ValueError as error:
        print(f"observatory: {error}", file=sys.stderr)
        return EXIT_USAGE
    commands: dict[str, Callable[[], int]] = {
        "up": lambda: _up(stack, out),
        "down": lambda: _down(stack, args.purge, out),
        "status": lambda: _status(stack, out),
        "logs": lambda: _logs(stack, args.component, args.n, args.follow, out),
        "doctor": lambda: doctor.run(stack, out),
    }
    return commands[args.command]()


def progress_line(event: Progress) -> str:
    line = f"[{event.elapsed_s:6.1f}s] {event.component:<15} {event.state.value}"
    quiet = {"", "healthy", event.state.value}  # nothing the state does not already say
    return line if event.detail in quiet else f"{line}  {event.detail}"


def _up(stack: Stack, out: TextIO) -> int:
    began = time.monotonic()
    try:
        status = stack.up(lambda event: print(progress_line(event), file=out, flush=True))
    except LaunchError as error:
        print(f"observatory up failed: {error}", file=out)
        if error.log_tail:
            print(f"----- last lines of {error.component}'s log -----\n{error.log_tail}", file=out)
        return EXIT_FAILED
    print(f"stack up in {time.monotonic() - began:.1f}s", file=out)
    _print_status(status, out)
    return EXIT_OK


def _down(stack: Stack, purge: bool, out: TextIO) -> int:
    try:
        report = stack.down(
            lambda event: print(progress_line(event), file=out, flush=True), purge=purge
        )
    except LaunchError as error:
        print(f"observatory down failed: {error}", file=out)
        return EXIT_FAILED
    print(f"stopped: {', '.join(report.stopped) or 'nothing'}", file=out)
    if report.already_gone:
        print(f"already gone (crashed or killed): {', '.join(report.already_gone)}", file=out)
    if report.purged:
        print("data deleted", file=out)
    return EXIT_OK


def _status(stack: Stack, out: TextIO) -> int:
    status = stack.status()
    _print_status(status, out)
    if status.running:
        return EXIT_OK
    # A remote deployment that does not answer cannot be used at all: "not running".
    if status.mode == "remote" or all(c.state is ComponentState.STOPPED for c in status.components):
        return EXIT_NOT_RUNNING
    return EXIT_FAILED


def _print_status(status: StackStatus, out: TextIO) -> None:
    where = f" ({status.state_dir})" if status.state_dir else ""
    print(f"{status.mode} stack{where}", file=out)
    print(f"{'COMPONENT':<15} {'STATE':<10} {'PID':>7}  {'PORTS':<30} RESTARTS  DETAIL", file=out)
    for c in status.components:
        ports = ",".join(str(p) for p in c.ports)
        pid = str(c.pid) if c.pid else "-"
        print(
            f"{c.name:<15} {c.state.value:<10} {pid:>7}  {ports:<30} {c.restarts:>8}  {c.detail}",
            file=out,
        )
    for name, url in status.endpoints.web_uis.items():
        print(f"{name + ':':<22} {url}", file=out)


def _logs(stack: Stack, component: str | None, lines: int, follow: bool, out: TextIO) -> int:
    if not isinstance(stack, LocalStack):
        print("observatory logs: remote mode has no local logs", file=sys.stderr)
        return EXIT_USAGE
    paths = {c.name: c.log_path for c in stack.status().components if c.log_path}
    paths["supervisor"] = str(stack.store.supervisor_log)
    if component is not None and component not in paths:
        known = ", ".join(sorted(paths))
        print(f"observatory logs: no log for {component!r}; known: {known}", file=sys.stderr)
        return EXIT_USAGE
    chosen = [component] if component else sorted(paths)
    for name in chosen:
        if len(chosen) > 1:
            print(f"===== {name}: {paths[name]} =====", file=out)
        print(_tail(Path(paths[name]), lines), file=out, flush=True)
    if follow:
        _follow(Path(paths[chosen[0]]) if len(chosen) == 1 else None, out)
    return EXIT_OK


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def _follow(path: Path | None, out: TextIO) -> None:
    if path is None:
        print("observatory logs: -f needs one COMPONENT", file=sys.stderr)
        return
    with path.open(errors="replace") as log:
        log.seek(0, os.SEEK_END)
        try:
            while True:
                chunk = log.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return
