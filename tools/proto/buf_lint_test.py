"""The contracts pass `buf lint` with the STANDARD rules configured in proto/buf.yaml."""

from __future__ import annotations

from pathlib import Path

from tools.proto import buf_tool


def test_buf_lint_passes(tmp_path: Path) -> None:
    # Lint a copy: buf must not write anything into the source tree (or the read-only runfiles).
    workdir = buf_tool.copy_proto_tree(tmp_path / "proto")
    result = buf_tool.run_buf(["lint", "--error-format", "text"], cwd=workdir)
    assert result.returncode == 0, result.output


def test_lint_covers_every_proto_file(tmp_path: Path) -> None:
    # Guard against a buf.yaml that silently excludes files: what buf builds must be exactly the
    # .proto files on disk.
    workdir = buf_tool.copy_proto_tree(tmp_path / "proto")
    result = buf_tool.run_buf(["ls-files"], cwd=workdir)
    assert result.returncode == 0, result.output
    listed = sorted(Path(line).as_posix() for line in result.stdout.split())
    assert listed == buf_tool.proto_files(workdir), result.output


def test_buf_format_is_clean(tmp_path: Path) -> None:
    # One canonical layout keeps contract diffs about content; fix with `buf format -w proto`.
    workdir = buf_tool.copy_proto_tree(tmp_path / "proto")
    result = buf_tool.run_buf(["format", "--diff", "--exit-code"], cwd=workdir)
    assert result.returncode == 0, result.output
