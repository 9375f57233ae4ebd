"""Entry point of `//interfaces:tui` and `python -m interfaces.tui`.

Interactive screen on a terminal; plain-text report with `--check`, without a TTY, or when the
screen cannot start (say urwid is missing outside Bazel: the report then says so and how to fix).
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
EXIT_INTERRUPTED = 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tui",
        description="Check what running the observatory locally needs, and how to install it.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="print the report as plain text; exit 1 if anything required is missing",
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
        from interfaces.tui.app import run_ui  # noqa: PLC0415 - urwid only when drawing
    except ImportError as exc:
        _fall_back(f"cannot start the screen ({exc})")
        return run_check(probes, stdout)
    try:
        run_ui(probes, out=stdout)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
