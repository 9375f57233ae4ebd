"""The metric names a /metrics page exports: sampled series, and families declared by
`# TYPE` whose labelled children have not been used yet (prometheus_client prints their HELP
and TYPE but no sample until the first increment)."""

from __future__ import annotations

import re

from tests.observability.promql import exposition_names

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "untyped": ("",),
}
_TYPE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)


def declared_names(text: str) -> set[str]:
    names: set[str] = set()
    for family, kind in _TYPE.findall(text):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names


def exported_names(text: str) -> set[str]:
    return exposition_names(text) | declared_names(text)
