"""Locate the contracts' files and the buf CLI, and run buf without side effects.

Shared by the contract tests and the baseline refresh entry point so that both agree on where
things live under Bazel (runfiles) and under plain pytest (the repository checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Bazel workspace name; runfiles of this repository live under $TEST_SRCDIR/$TEST_WORKSPACE/:
# "observatory" in WORKSPACE mode, "_main" under bzlmod. This is only the fallback.
WORKSPACE_NAME = "observatory"
# Checkout root when running from the source tree (tools/proto/buf_tool.py -> repo root). Not
# resolved: under Bazel that would escape the runfiles into the source tree.
REPO_ROOT = Path(os.path.abspath(__file__)).parents[2]
# Where `buf build -o` writes the committed baseline image, relative to the proto directory.
BASELINE_RELPATH = Path("baseline") / "observatory.binpb"
# Baseline image path relative to the repository root (what the refresh entry point writes).
BASELINE_REPO_PATH = Path("proto") / BASELINE_RELPATH


def proto_dir() -> Path:
    """Return the `proto/` directory: from the runfiles under Bazel, else from the checkout."""
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        # No fallback to the checkout here: a test missing `data = ["//proto:all_protos"]` must
        # fail, not quietly read the source tree.
        candidate = Path(srcdir) / os.environ.get("TEST_WORKSPACE", WORKSPACE_NAME) / "proto"
        if not (candidate / "buf.yaml").is_file():
            raise FileNotFoundError(f"{candidate}/buf.yaml not in runfiles; add //proto:all_protos")
        return candidate
    return REPO_ROOT / "proto"


def proto_files(root: Path | None = None) -> list[str]:
    """Return every .proto under `root` as import paths (observatory/<area>/v1/<file>.proto)."""
    base = root if root is not None else proto_dir()
    # Skip dot-dirs so a stray tool cache inside the tree is never mistaken for a contract.
    return sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*.proto")
        if not any(part.startswith(".") for part in p.relative_to(base).parts)
    )


def find_buf() -> Path:
    """Return the buf executable shipped by the `buf-bin` wheel.

    The wheel installs buf as a "scripts" file, not inside the `buf_bin` package, so it is found
    relative to the package's site-packages directory rather than through PATH (which under Bazel
    holds nothing of ours). Layouts covered: `pip install --target site` as @pip does (site/bin/),
    a virtualenv (lib/pythonX.Y/site-packages + bin/), rules_python's whl_library
    (site-packages/ + bin/ side by side), and an unpacked wheel (buf_bin-*.data/scripts/).
    """
    # Imported here, not at the top, so that a buf from PATH works on a Python without buf-bin.
    # The package ships no type information; only __file__ is used.
    import buf_bin  # type: ignore[import-untyped]  # noqa: PLC0415

    init_file: str | None = getattr(buf_bin, "__file__", None)
    if init_file is None:
        raise FileNotFoundError("buf_bin has no __file__; cannot locate the buf binary")
    # Try the unresolved path first: under Bazel it stays inside the runfiles tree, which is what
    # the test is allowed to see; the resolved path is a fallback for symlinked installs.
    unresolved = Path(os.path.abspath(init_file))
    candidates: list[Path] = []
    for init in (unresolved, unresolved.resolve()):
        site_packages = init.parent.parent
        candidates.append(site_packages / "bin" / "buf")
        # Only climb out of a directory that really is a site-packages, so a look-alike path
        # elsewhere on the machine is never picked up.
        if site_packages.name == "site-packages":
            if site_packages.parent.name.startswith("python"):
                candidates.append(site_packages.parent.parent.parent / "bin" / "buf")
            candidates.append(site_packages.parent / "bin" / "buf")
        candidates += sorted(site_packages.glob("buf_bin-*.data/scripts/buf"))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    tried = "\n  ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"buf binary of the buf-bin package not found; tried:\n  {tried}")


@dataclass(frozen=True)
class BufResult:
    """Outcome of one buf invocation."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, labelled, for assertion messages."""
        return (
            f"$ buf {' '.join(self.args)}\n(exit {self.returncode})\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


@contextmanager
def isolated_home() -> Iterator[dict[str, str]]:
    """Yield an environment whose HOME and caches point into a throwaway directory.

    buf writes a module cache and may read user config; pointing both at a temp dir keeps runs
    hermetic and lets them work in read-only sandboxes.
    """
    with tempfile.TemporaryDirectory(prefix="buf-home-") as home:
        env = dict(os.environ)
        env.update(
            HOME=home,
            XDG_CACHE_HOME=os.path.join(home, ".cache"),
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            BUF_CACHE_DIR=os.path.join(home, "buf-cache"),
        )
        yield env


def run_buf(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> BufResult:
    """Run buf with `args` in `cwd` and capture its output (never raises on a non-zero exit)."""
    with isolated_home() as default_env:
        completed = subprocess.run(
            [str(find_buf()), *args],
            cwd=cwd,
            env=env if env is not None else default_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    return BufResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)


def copy_proto_tree(dest: Path) -> Path:
    """Copy the proto directory to `dest` and return the copy.

    Tests run buf on a copy so that nothing (caches, lock files, edits) lands in the source tree
    and so that runfiles symlinks become plain, editable files.
    """
    shutil.copytree(proto_dir(), dest, symlinks=False)
    return dest
