"""The contracts stay compatible with the committed baseline, and the check really bites.

The baseline (proto/baseline/observatory.binpb) is the image of the last released contracts; a
deliberate breaking change means a new package version (v2), not a refreshed baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.proto import buf_tool


def _baseline() -> Path:
    path = buf_tool.proto_dir() / buf_tool.BASELINE_RELPATH
    refresh = "bazel run //tools/proto:refresh_baseline"
    assert path.is_file(), f"baseline image missing: {path} (run: {refresh})"
    return path


def _breaking(workdir: Path, error_format: str) -> buf_tool.BufResult:
    return buf_tool.run_buf(
        ["breaking", ".", "--against", str(_baseline()), "--error-format", error_format],
        cwd=workdir,
    )


def _findings(result: buf_tool.BufResult) -> list[dict[str, object]]:
    """Parse buf's JSON-lines findings (one object per line on stdout)."""
    findings: list[dict[str, object]] = []
    for line in result.stdout.splitlines():
        if line.strip():
            parsed = json.loads(line)
            assert isinstance(parsed, dict), result.output
            findings.append(parsed)
    return findings


def test_no_breaking_changes_against_baseline(tmp_path: Path) -> None:
    workdir = buf_tool.copy_proto_tree(tmp_path / "proto")
    # Text output: on failure a person reads it ("file:line:col:message").
    result = _breaking(workdir, "text")
    assert result.returncode == 0, result.output


@dataclass(frozen=True)
class Mutation:
    """A textual edit of job.proto that must be reported as breaking."""

    old: str
    new: str
    rule: str  # buf rule id expected among the findings.


# Job.priority is the victim: a scalar in a v1 message every service reads. The original line is
# unique in the file (JobSpec.priority has another number), which _apply asserts.
_FIELD_LINE = "  int32 priority = 4;\n"
_MUTATIONS = {
    "removed": Mutation(_FIELD_LINE, "", "FIELD_NO_DELETE"),
    # Renumbering is a delete of the old number plus an unrelated new field on the wire.
    "renumbered": Mutation(_FIELD_LINE, "  int32 priority = 40;\n", "FIELD_NO_DELETE"),
    "retyped": Mutation(_FIELD_LINE, "  int64 priority = 4;\n", "FIELD_SAME_TYPE"),
}


def _apply(proto_file: Path, mutation: Mutation) -> None:
    text = proto_file.read_text(encoding="utf-8")
    assert text.count(mutation.old) == 1, f"mutation target not unique in {proto_file}"
    proto_file.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")


@pytest.mark.parametrize("name", sorted(_MUTATIONS))
def test_breaking_change_is_detected(tmp_path: Path, name: str) -> None:
    mutation = _MUTATIONS[name]
    workdir = buf_tool.copy_proto_tree(tmp_path / "proto")
    _apply(workdir / "observatory" / "jobs" / "v1" / "job.proto", mutation)

    # JSON output so the finding's rule id and message can be asserted exactly.
    result = _breaking(workdir, "json")

    assert result.returncode != 0, f"buf breaking accepted a {name} field:\n{result.output}"
    findings = _findings(result)
    matching = [
        f
        for f in findings
        if f.get("type") == mutation.rule
        and f.get("path") == "observatory/jobs/v1/job.proto"
        and 'name "priority"' in str(f.get("message"))
        and 'message "Job"' in str(f.get("message"))
    ]
    assert matching, f"no {mutation.rule} finding naming Job.priority:\n{result.output}"
