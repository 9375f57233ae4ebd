"""Entry point of `//interfaces:tui` and `python -m interfaces.tui`.

On a terminal: splash, prerequisite check, the local stack (launched unless running), then the
live dashboard; with `--gateway`/`--read-model` (or OBSERVATORY_GATEWAY / OBSERVATORY_READ_MODEL)
straight to the dashboard of that deployment. A plain-text prerequisite report with `--check`,
without a TTY, or when the screen cannot start (say urwid is missing outside Bazel: the report
then says so and how to fix).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from interfaces.tui.prereqs import Probes, required_ok, run_checks
from interfaces.tui.report import format_report
from interfaces.tui.system import default_probes

EXIT_OK = 0
EXIT_MISSING = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tui",
        description="The observatory's terminal dashboard: checks what running locally needs, "
        "brings up the local stack and shows it live.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="print the prerequisite report as plain text; exit 1 if anything required is missing",
    )
    parser.add_argument(
        "--no-launch",
        action="store_true",
        help="do not start the local stack by itself: wait for L on the stack screen",
    )
    parser.add_argument(
        "--processors", type=int, help="processor replicas of the local stack (default 2)"
    )
    parser.add_argument(
        "--gateway", metavar="HOST:PORT", help="an existing deployment's gateway (gRPC)"
    )
    parser.add_argument(
        "--read-model", metavar="HOST:PORT", help="an existing deployment's read model (gRPC)"
    )
    return parser.parse_args(argv)


def run_check(probes: Probes, out: TextIO) -> int:
    checks = run_checks(probes)
    out.write(format_report(checks))
    out.flush()
    return EXIT_OK if required_ok(checks) else EXIT_MISSING


def _fall_back(reason: str) -> None:
    print(f"{reason}: printing the report instead (as with --check)", file=sys.stderr)


def main(
    argv: Sequence[str] | None = None,
    *,
    probes: Probes | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    args = parse_args(argv)
    probes = probes or default_probes()
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if args.check:
        return run_check(probes, stdout)
    if not (stdin.isatty() and stdout.isatty()):
        # Piped, CI, `bazel test`: urwid would fail on a non-terminal.
        _fall_back("not a terminal")
        return run_check(probes, stdout)
    try:
        # urwid, grpc and the launcher only when drawing.
        from interfaces.tui.app import run_ui  # noqa: PLC0415
        from interfaces.tui.observatory_screen import observatory_screen  # noqa: PLC0415
        from tools.launcher.factory import stack_from  # noqa: PLC0415
    except ImportError as exc:
        _fall_back(f"cannot start the screen ({exc})")
        return run_check(probes, stdout)
    try:
        stack = stack_from(
            gateway=args.gateway, read_model=args.read_model, processors=args.processors
        )
    except ValueError as error:
        print(f"tui: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        run_ui(
            probes,
            stack=stack,
            local=stack.status().mode == "local",
            auto_launch=not args.no_launch,
            dashboard=observatory_screen,
            out=stdout,
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
