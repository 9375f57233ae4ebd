"""ruff (lint + format) and mypy --strict over every Python file of the working tree.

Tagged `external` and `local`: it reads the real source tree (found through the runfiles
symlink of pyproject.toml) so that a new file cannot escape it, and it is never cached, so an
edit is always checked. ruff takes well under a second; mypy reuses its cache in .mypy_cache.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mypy import api as mypy_api

SKIPPED_DIRS = {".git", "__pycache__", ".mypy_cache", ".ruff_cache", "node_modules"}


def workspace() -> Path:
    runfiles = Path(os.environ["TEST_SRCDIR"]) / os.environ["TEST_WORKSPACE"]
    return (runfiles / "pyproject.toml").resolve().parent


def ruff_bin() -> str:
    # The ruff wheel's executable, installed by pip --target into the @pip repository's bin/.
    for entry in sys.path:
        candidate = Path(entry) / "bin" / "ruff"
        if candidate.is_file():
            return str(candidate)
    raise AssertionError("the ruff wheel is missing from @pip//:all_packages")


def python_files(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SKIPPED_DIRS
            and not d.startswith("bazel-")
            and (rel / d).as_posix() != "third_party/bazel"
        ]
        yield from sorted(str(rel / f) for f in filenames if f.endswith(".py"))


def run_ruff(*args: str) -> None:
    root = workspace()
    result = subprocess.run(
        [ruff_bin(), *args, "--no-cache", *python_files(root)],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_ruff_check() -> None:
    run_ruff("check")


def test_ruff_format() -> None:
    run_ruff("format", "--check")


def test_mypy_strict() -> None:
    root = workspace()
    # The project's own modules come from the working tree, so each is found exactly once;
    # generated protos (with .pyi) from the runfiles as sources; third-party as installed.
    runfiles = str(Path(os.environ["TEST_SRCDIR"]) / os.environ["TEST_WORKSPACE"])
    generated = [p for p in sys.path if p.startswith(runfiles + os.sep)]
    os.environ["MYPYPATH"] = os.pathsep.join(generated)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in sys.path if not p.startswith((runfiles, str(root)))
    )
    os.chdir(root)
    files = list(python_files(root))
    stdout, stderr, status = mypy_api.run(
        ["--config-file", "pyproject.toml", "--python-executable", sys.executable, *files]
    )
    assert status == 0, stdout + stderr
