"""Pure presentation: the median over repeats, the targets met or not, and the printed table.

Results are plain dicts (they are also the JSON output), so everything here is testable on
literals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tools.bench import stats

OURS_MODES = ("batch", "single")
CELERY_DEFAULT = "celery default"
CELERY_CONFIRM = "celery confirm_publish"
RAW = "raw amqp"
BASELINES = (CELERY_DEFAULT, CELERY_CONFIRM, RAW)
COMPONENTS = (
    "gateway",
    "processors",
    "metrics_engine",
    "read_model",
    "rabbitmq",
    "postgres",
    "mongo",
    "redis",
)
TARGET_E2E_RATE = 2500.0
TARGET_LATENCY_P99_MS = 100.0
TARGET_FRESHNESS_P99_MS = 250.0
TARGET_COST_SPREAD = 0.20
TARGET_PAGE_P99_MS = 20.0
TARGET_STATS_P99_MS = 5.0
TARGET_STORED = 1_000_000


def median_tree(repeats: Sequence[Any]) -> Any:
    """The element-wise median of structurally equal dicts/numbers (one per repeat).

    Keys missing from some repeats use the repeats that have them; non-numbers keep the first.
    """
    first = repeats[0]
    if isinstance(first, Mapping):
        keys = dict.fromkeys(k for r in repeats for k in r)
        return {k: median_tree([r[k] for r in repeats if k in r]) for k in keys}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    return stats.median_of([float(v) for v in repeats])


def _num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _quantile_cell(q: Mapping[str, float] | None, keys: Sequence[str]) -> str:
    if not q or q.get("samples", 0) == 0:
        return "-"
    return " / ".join(_num(q[k], 1) for k in keys)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def total_cpu(cpu: Mapping[str, float]) -> float:
    """Sum over components; NaN when the run measured none (it failed)."""
    values = [v for v in cpu.values() if not math.isnan(v)]
    return sum(values) if values else math.nan


def scale_table(scale: Mapping[str, Any]) -> list[str]:
    runs: Mapping[str, Mapping[str, Any]] = scale["runs"]
    ours = [m for m in OURS_MODES if m in runs]
    theirs = [m for m in BASELINES if m in runs]
    modes = [*ours, *theirs]
    header = ["", *modes]
    rows: list[list[str]] = []

    rows.append(
        ["submit jobs/s", *(_num(runs[m].get("submit_rate", math.nan)) for m in [*ours, *theirs])]
    )
    rows.append(
        [
            "end-to-end jobs/s",
            *(_num(runs[m].get("end_to_end_rate", math.nan)) for m in [*ours, *theirs]),
        ]
    )
    rows.append(
        [
            "terminal in job records jobs/s",
            *(_num(runs[m].get("records_rate", math.nan)) for m in ours),
            *("" for _ in theirs),
        ]
    )
    for base in theirs:
        rows.append(
            [
                f"e2e ratio to {base}",
                *(
                    _ratio(
                        stats.ratio(
                            runs[m].get("end_to_end_rate", math.nan),
                            runs[base].get("end_to_end_rate", math.nan),
                        )
                    )
                    for m in ours
                ),
                *("" for _ in theirs),
            ]
        )

    def ours_row(label: str, value: Any) -> None:
        rows.append([label, *(value(runs[m]) for m in ours), *("" for _ in theirs)])

    ours_row(
        "submit->terminal p50/p95/p99 ms",
        lambda r: _quantile_cell(r.get("latency"), ("p50_ms", "p95_ms", "p99_ms")),
    )
    ours_row(
        "freshness stats p50/p99 ms",
        lambda r: _quantile_cell(r.get("stats_freshness"), ("p50_ms", "p99_ms")),
    )
    ours_row(
        "freshness detail p50/p99 ms",
        lambda r: _quantile_cell(r.get("detail_freshness"), ("p50_ms", "p99_ms")),
    )
    for component in (*COMPONENTS, "celery_worker"):
        cells = [_num(runs[m].get("cpu_per_1000", {}).get(component, math.nan), 2) for m in modes]
        if any(c != "-" for c in cells):
            rows.append([f"CPU s/1000 jobs {component}", *cells])
    rows.append(
        [
            "CPU s/1000 jobs total",
            *(_num(total_cpu(runs[m].get("cpu_per_1000", {})), 2) for m in modes),
        ]
    )
    errors = [f"  {m}: {runs[m]['error']}" for m in modes if runs[m].get("error")]
    scope = f"{scale['processors']} processors, median of {scale['repeats']}"
    title = f"N = {scale['jobs']:,} jobs, {scope}"
    return [title, *_table(header, rows), *errors]


def cost_growth(scales: Sequence[Mapping[str, Any]], mode: str = "batch") -> dict[str, Any]:
    """Total CPU s per 1,000 jobs and end-to-end rate per scale, and the spread of the cost."""
    per_scale = {
        str(s["jobs"]): {
            "cpu_per_1000": total_cpu(s["runs"][mode].get("cpu_per_1000", {})),
            "end_to_end_rate": s["runs"][mode].get("end_to_end_rate", math.nan),
        }
        for s in scales
        if mode in s["runs"]
    }
    costs = [v["cpu_per_1000"] for v in per_scale.values()]
    measured = sum(1 for c in costs if not math.isnan(c))
    return {
        "mode": mode,
        "per_scale": per_scale,
        "spread": stats.spread(costs),
        "measured": measured,
    }


def _batch_rate(scale: Mapping[str, Any]) -> float:
    rate: float = scale["runs"].get("batch", {}).get("end_to_end_rate", math.nan)
    return rate


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its measured value; met is None when it was not measured."""
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, measured: float, met: bool | None) -> None:
        out.append({"name": name, "target": goal, "measured": measured, "met": met})

    scales = results.get("scales", [])
    measured = [s for s in scales if not math.isnan(_batch_rate(s))]
    top = measured[-1]["runs"] if measured else {}
    e2e = _batch_rate(measured[-1]) if measured else math.nan
    add(
        "end-to-end (batch, largest N measured)",
        f">= {TARGET_E2E_RATE:,.0f} jobs/s",
        e2e,
        None if math.isnan(e2e) else e2e >= TARGET_E2E_RATE,
    )
    for base, goal in ((CELERY_CONFIRM, 2.0), (CELERY_DEFAULT, 1.0)):
        value = stats.ratio(e2e, top.get(base, {}).get("end_to_end_rate", math.nan))
        add(
            f"end-to-end vs {base}",
            f">= {goal:.0f}x",
            value,
            None if math.isnan(value) else value >= goal,
        )
    checks = (
        ("submit->terminal p99", "latency", TARGET_LATENCY_P99_MS),
        ("freshness stats p99", "stats_freshness", TARGET_FRESHNESS_P99_MS),
        ("freshness detail p99", "detail_freshness", TARGET_FRESHNESS_P99_MS),
    )
    for key, how in OFFERED_LOAD_RUNS:
        rate = results.get(key) or {}
        if key != "rate" and not rate:
            continue  # the batched run is optional; the single-submit one is always listed
        for name, figure, limit in checks:
            value = (rate.get(figure) or {}).get("p99_ms", math.nan)
            add(
                f"{name} at offered load, {how(rate)}",
                f"< {limit:.0f} ms",
                value,
                None if math.isnan(value) else value < limit,
            )
    growth: dict[str, Any] = (
        cost_growth(scales) if scales else {"spread": math.nan, "per_scale": {}}
    )
    spread: float = growth["spread"]
    add(
        "per-job CPU cost growth across N",
        f"<= {TARGET_COST_SPREAD:.0%}",
        spread,
        None
        if math.isnan(spread) or growth.get("measured", 0) < 2
        else spread <= TARGET_COST_SPREAD,
    )
    big = [q for q in results.get("queries", []) if q["stored"] >= TARGET_STORED]
    page = big[-1]["job_page"]["p99_ms"] if big else math.nan
    stat = big[-1]["stats"]["p99_ms"] if big else math.nan
    add(
        "filtered job page p99 at 1M stored",
        f"< {TARGET_PAGE_P99_MS:.0f} ms",
        page,
        None if math.isnan(page) else page < TARGET_PAGE_P99_MS,
    )
    add(
        "stats p99 at 1M stored",
        f"< {TARGET_STATS_P99_MS:.0f} ms",
        stat,
        None if math.isnan(stat) else stat < TARGET_STATS_P99_MS,
    )
    return out


def _window(rate: Mapping[str, Any]) -> str:
    return f"batched every {rate.get('window_ms', 0):g} ms"


# results key -> how its submits were made, as the table and the targets say it.
OFFERED_LOAD_RUNS: tuple[tuple[str, Callable[[Mapping[str, Any]], str]], ...] = (
    ("rate", lambda rate: "single submits"),
    ("rate_batched", _window),
)


def _offered_load_block(
    rate: Mapping[str, Any] | None, how: Callable[[Mapping[str, Any]], str]
) -> list[str]:
    if not rate:
        return []
    if "error" in rate:
        return [f"Offered load ({how(rate)}): failed ({rate['error']})", ""]
    refused = rate.get("refused_submits") or 0
    lines = [
        f"Offered load {rate['offered_per_s']:,.0f} jobs/s for {rate['jobs']:,} jobs "
        f"(open loop, {how(rate)})"
        + (f"; {refused:,} jobs refused or past the deadline" if refused else "")
    ]
    quantiles = ("p50_ms", "p95_ms", "p99_ms")
    rows = [
        ["submit->terminal ms", _quantile_cell(rate.get("latency"), quantiles)],
        ["freshness stats ms", _quantile_cell(rate.get("stats_freshness"), quantiles)],
        ["freshness detail ms", _quantile_cell(rate.get("detail_freshness"), quantiles)],
    ]
    return [*lines, *_table(["", "p50 / p95 / p99"], rows), ""]


def render(results: Mapping[str, Any]) -> str:
    lines: list[str] = []
    machine = results.get("machine", {})
    if machine:
        lines.append(f"machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores")
        lines.append("")
    for scale in results.get("scales", []):
        lines += [*scale_table(scale), ""]
    if results.get("scales"):
        growth = cost_growth(results["scales"])
        rows = [
            [f"{int(n):,}", _num(v["cpu_per_1000"], 2), _num(v["end_to_end_rate"])]
            for n, v in growth["per_scale"].items()
        ]
        spread = _num(growth["spread"] * 100, 0)
        lines.append(f"How cost grows with work ({growth['mode']}); spread {spread}%")
        lines += [*_table(["N", "CPU s/1000 jobs", "end-to-end jobs/s"], rows), ""]
    for key, how in OFFERED_LOAD_RUNS:
        lines += _offered_load_block(results.get(key), how)
    queries = results.get("queries", [])
    if queries:
        rows = [
            [
                f"{q['stored']:,}",
                *(
                    _quantile_cell(q.get(k), ("p50_ms", "p99_ms"))
                    for k in ("stats", "job_page", "job_detail")
                ),
            ]
            for q in queries
        ]
        lines.append("Read-model query latency, ms p50 / p99")
        header = ["jobs stored", "stats", "filtered job page", "job detail"]
        lines += [*_table(header, rows), ""]
    checks = results.get("targets") or targets(results)
    rows = [
        [
            t["name"],
            t["target"],
            _num(t["measured"], 2),
            {True: "met", False: "NOT met", None: "not measured"}[t["met"]],
        ]
        for t in checks
    ]
    lines.append("Targets")
    lines += _table(["target", "goal", "measured", ""], rows)
    return "\n".join(lines) + "\n"
