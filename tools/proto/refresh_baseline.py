"""Rebuild the committed baseline image proto/baseline/observatory.binpb.

Intended use: `bazel run //tools/proto:refresh_baseline` (buf comes from the Bazel pip repo and
the image is written into the workspace via BUILD_WORKSPACE_DIRECTORY). Refresh only when
releasing the contracts: the breaking check compares against this image, so refreshing it accepts
every change made since.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tools.proto import buf_tool


def _workspace() -> Path:
    # `bazel run` executes in the runfiles tree; the checkout is only known through this variable.
    env = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    return Path(env) if env else buf_tool.REPO_ROOT


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--buf", type=Path, help="buf executable (default: the one shipped by the buf-bin package)"
    )
    args = parser.parse_args(argv)

    workspace = _workspace()
    if not (workspace / "proto" / "buf.yaml").is_file():
        print(f"error: {workspace}/proto/buf.yaml not found", file=sys.stderr)
        return 2
    buf = args.buf if args.buf is not None else buf_tool.find_buf()
    if not buf.is_file():
        print(f"error: buf executable not found: {buf}", file=sys.stderr)
        return 2
    out = workspace / buf_tool.BASELINE_REPO_PATH
    out.parent.mkdir(parents=True, exist_ok=True)

    # Build into a temp file and rename, so a failed build never leaves a truncated baseline.
    # Source info (comments, positions) is left out: the breaking check does not need it, and
    # comment-only edits then do not churn the committed binary.
    fd, tmp_name = tempfile.mkstemp(prefix=".observatory-", suffix=".binpb", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with buf_tool.isolated_home() as env:
            completed = subprocess.run(
                [str(buf), "build", "proto", "--exclude-source-info", "-o", str(tmp)],
                cwd=workspace,
                env=env,
                check=False,
            )
        if completed.returncode != 0:
            print(f"error: buf build failed (exit {completed.returncode})", file=sys.stderr)
            return completed.returncode
        tmp.chmod(0o644)  # mkstemp makes it private; the committed file is an ordinary one.
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out.relative_to(workspace)} ({out.stat().st_size} bytes) with {buf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
