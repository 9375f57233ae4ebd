"""Plain-text prerequisite report (`--check`, no TTY) and the wording it shares with the screen."""

from __future__ import annotations

from collections.abc import Sequence

from interfaces.tui.prereqs import MARKERS, Check, Status, combined_install_command, summary

TITLE = "Distributed Task Observatory - prerequisites"
SUBTITLE = "What running the stack locally needs. Nothing is changed by this check."
MARKER_WIDTH = 10  # len("[missing] ")
NAME_WIDTH = 24  # fits "prometheus-alertmanager"
PURPOSE_LABEL = "needed for"
INSTALL_ALL_LABEL = "install all"  # short, so the command fits beside it at 80 columns


def check_line(check: Check) -> str:
    return (
        f"{MARKERS[check.status]:<{MARKER_WIDTH}}{check.name:<{NAME_WIDTH}}{check.detail}".rstrip()
    )


def problem_lines(check: Check) -> list[str]:
    """What to read and run for a check that is not ok; empty when it is ok."""
    if check.status is Status.OK:
        return []
    return [f"{PURPOSE_LABEL}: {check.purpose}", *(fix.as_line() for fix in check.fixes)]


def format_report(checks: Sequence[Check]) -> str:
    lines = [TITLE, ""]
    group: str | None = None
    for check in checks:
        if check.group != group:
            if group is not None:
                lines.append("")
            lines.append(check.group)
            group = check.group
        lines.append(check_line(check))
        lines.extend(" " * MARKER_WIDTH + line for line in problem_lines(check))
    lines += ["", summary(checks)]
    command = combined_install_command(checks)
    if command is not None:
        lines.append(f"{INSTALL_ALL_LABEL}: {command}")
    return "\n".join(lines) + "\n"
