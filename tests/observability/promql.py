"""Metric names in PromQL expressions, and the expressions of this repo's rule files and
Grafana dashboards: what the metric-name check compares with the services' live /metrics.

No YAML library is available, so rule files are read line by line: the project's rule files
keep `expr:` either on one line or as a `|` block, and `record:` on one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Series that Prometheus makes itself rather than scraping them from a target.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_TOKEN = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, keywords or label names)."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("1", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _TOKEN.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def _rule_fields(path: Path, field: str) -> Iterator[str]:
    lines = path.read_text().splitlines()
    start = re.compile(rf"^(\s*)(?:- )?{field}:\s*(.*)$")
    index = 0
    while index < len(lines):
        found = start.match(lines[index])
        index += 1
        if not found:
            continue
        indent, value = len(found.group(1)), found.group(2).strip()
        if value not in ("|", ">", "|-", ">-"):
            yield value.strip("'\"")
            continue
        block = []
        while index < len(lines) and (
            not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
        ):
            block.append(lines[index].strip())
            index += 1
        yield " ".join(block).strip()


def rule_expressions(path: Path) -> list[str]:
    """Every `expr:` of a Prometheus rule file."""
    return list(_rule_fields(path, "expr"))


def recorded_names(path: Path) -> set[str]:
    """The series a recording rule file makes (`record:`)."""
    return set(_rule_fields(path, "record"))


def alert_names(path: Path) -> list[str]:
    """The alerts of an alert rule file, in order."""
    return list(_rule_fields(path, "alert"))


def dashboard_expressions(dashboard: dict[str, object]) -> list[str]:
    """Every query expression of a Grafana dashboard's panels (rows' nested panels included)."""
    found: list[str] = []

    def walk(panels: object) -> None:
        for panel in panels if isinstance(panels, list) else []:
            if not isinstance(panel, dict):
                continue
            for target in panel.get("targets") or []:
                if isinstance(target, dict) and isinstance(target.get("expr"), str):
                    found.append(target["expr"])
            walk(panel.get("panels"))

    walk(dashboard.get("panels"))
    return found


def load_dashboard(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a dashboard must be a JSON object")
    return document


def exposition_names(text: str) -> set[str]:
    """The sample names of a Prometheus text exposition (/metrics)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
