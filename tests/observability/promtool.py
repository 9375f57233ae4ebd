"""Runs Debian's promtool / amtool on a temporary copy of the configuration.

The copy has real files (not Bazel's runfiles symlinks), so relative rule paths resolve next to
the file that names them, as they do in the source tree.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tools.testing.servers.programs import find_program

TIMEOUT_S = 60


def copy_tree(source: Path, into: Path) -> Path:
    target = into / source.name
    shutil.copytree(source, target, symlinks=False)
    return target


def run(tool: str, apt_package: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs the tool; the result carries stdout+stderr for a failure message."""
    argv = [find_program(tool, apt_package), *map(str, args)]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run("promtool", "prometheus", *args)


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run("amtool", "prometheus-alertmanager", *args)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
