"""`bazel run //tools/bench -- ...`: the options and the order of the runs."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import grpc
import psycopg

from tools.bench import celery_runner, cpu, ours, raw_amqp, report, seed, stats
from tools.bench.stack import Stack, running_stack
from tools.testing.servers.base import ServerError
from tools.testing.servers.programs import MissingProgramError

MODES = ("batch", "single")


@dataclass(frozen=True)
class Options:
    jobs: tuple[int, ...]
    processors: int
    modes: tuple[str, ...]
    celery: bool
    raw: bool
    stored: int
    rate: float
    rate_seconds: float
    rate_window_ms: float  # the batching client's window in the second offered-load run; 0: none
    repeats: tuple[int, ...] | None  # one per --jobs entry, or one for all
    query_calls: int
    json_path: Path | None
    state_dir: Path | None


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v.replace("_", "")) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _modes(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in MODES]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"--modes takes {', '.join(MODES)}; got {text!r}")
    return values


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench", description="Throughput, latency and cost of the local stack vs Celery."
    )
    parser.add_argument(
        "--jobs",
        type=_positive_ints,
        default=(1000, 10_000, 100_000),
        help="job counts N, comma-separated (default 1000,10000,100000)",
    )
    parser.add_argument("--processors", type=int, default=2, help="processors K (default 2)")
    parser.add_argument("--modes", type=_modes, default=MODES, help="batch,single (default both)")
    parser.add_argument("--skip-celery", action="store_true", help="no Celery baseline")
    parser.add_argument("--skip-raw", action="store_true", help="no raw pika baseline")
    parser.add_argument(
        "--stored",
        type=int,
        default=1_000_000,
        help="jobs in PostgreSQL for the query-latency-at-scale figure (0: skip)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="same as --stored 0")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="offered load (jobs/s) of the latency run; 0 skips it",
    )
    parser.add_argument(
        "--rate-seconds",
        type=float,
        default=20.0,
        help="duration of the offered-load run (default 20)",
    )
    parser.add_argument(
        "--rate-window-ms",
        type=float,
        default=10.0,
        help="the offered load again from a client that sends what arrived every this many ms "
        "as one SubmitJobs (default 10; 0 skips that run)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive_ints,
        default=None,
        help="repeats per figure: one for every N, or one per --jobs entry "
        "(default 3 up to N=10,000, 1 above)",
    )
    parser.add_argument(
        "--query-calls",
        type=int,
        default=300,
        help="calls per read-model query timed (default 300)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: N=500, 1 repeat, 3 s offered load, no 1M seeding",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        type=Path,
        default=None,
        help="also write the results here as JSON",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the servers keep their data and logs (default: a temp dir)",
    )
    args = parser.parse_args(argv)
    jobs_given = any(a == "--jobs" or a.startswith("--jobs=") for a in argv)
    if args.processors < 1:
        parser.error(f"--processors must be >= 1, got {args.processors}")
    if args.rate < 0 or args.rate_seconds <= 0 or args.rate_window_ms < 0:
        parser.error("--rate and --rate-window-ms must be >= 0 and --rate-seconds > 0")
    if args.repeats is not None and len(args.repeats) not in (1, len(args.jobs)):
        parser.error(f"--repeats takes one count or one per --jobs entry, got {args.repeats}")
    if args.query_calls < 1:
        parser.error(f"--query-calls must be >= 1, got {args.query_calls}")
    stored = 0 if args.skip_scale else args.stored
    if stored < 0:
        parser.error(f"--stored must be >= 0, got {stored}")
    if args.quick:
        return Options(
            jobs=args.jobs if jobs_given else (500,),
            processors=args.processors,
            modes=args.modes,
            celery=not args.skip_celery,
            raw=not args.skip_raw,
            stored=0,
            rate=args.rate,
            rate_seconds=min(args.rate_seconds, 3.0),
            rate_window_ms=args.rate_window_ms,
            repeats=(1,),
            query_calls=min(args.query_calls, 50),
            json_path=args.json_path,
            state_dir=args.state_dir,
        )
    return Options(
        jobs=args.jobs,
        processors=args.processors,
        modes=args.modes,
        celery=not args.skip_celery,
        raw=not args.skip_raw,
        stored=stored,
        rate=args.rate,
        rate_seconds=args.rate_seconds,
        rate_window_ms=args.rate_window_ms,
        repeats=args.repeats,
        query_calls=args.query_calls,
        json_path=args.json_path,
        state_dir=args.state_dir,
    )


def repeats_for(options: Options, jobs: int) -> int:
    """By default more repeats the shorter the run: a 1,000-job run lasts about half a second,
    so what else the shared host does in that moment moves one run's figures by 20-30 %."""
    if options.repeats is None:
        return 5 if jobs <= 1_000 else 3 if jobs <= 10_000 else 1
    if len(options.repeats) == 1:
        return options.repeats[0]
    return options.repeats[options.jobs.index(jobs)]


def completion_timeout(jobs: int) -> float:
    """Generous: a slow shared machine is not a failure, a stuck pipeline is."""
    return 120.0 + jobs / 50


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _quantiles(seconds: Sequence[float]) -> dict[str, float]:
    return stats.quantiles_ms(seconds)


def _cpu_per_1000(spent: Mapping[str, float], jobs: int) -> dict[str, float]:
    grouped: dict[str, float] = {}
    for name, seconds in spent.items():
        key = "processors" if name.startswith("processor-") else name
        grouped[key] = grouped.get(key, 0.0) + seconds
    return {name: stats.per_thousand(seconds, jobs) for name, seconds in grouped.items()}


def _ours_figures(result: ours.RunResult, cpu_per_1000: dict[str, float]) -> dict[str, Any]:
    return {
        "submit_rate": result.submit_rate,
        "end_to_end_rate": result.end_to_end_rate,
        "records_rate": result.records_rate,
        "latency": _quantiles(result.latency_s),
        "stats_freshness": _quantiles(result.stats_freshness_s),
        "detail_freshness": _quantiles(result.detail_freshness_s),
        "cpu_per_1000": cpu_per_1000,
        "failed_jobs": result.failed_jobs,
    }


def _run_ours(stack: Stack, clients: ours.Clients, mode: str, jobs: int) -> dict[str, Any]:
    submit = ours.submit_batches if mode == "batch" else ours.submit_singles
    result = ours.run(clients, mode, jobs, submit, completion_timeout(jobs), cpu_roots=stack.pids())
    figures = _ours_figures(result, _cpu_per_1000(result.cpu_seconds, jobs))
    log(f"{mode} N={jobs}: e2e {figures['end_to_end_rate']:,.0f} jobs/s")
    return figures


def _run_celery(
    stack: Stack, worker_pid: int, jobs: int, *, confirm_publish: bool
) -> dict[str, Any]:
    pids = {"celery_worker": worker_pid, "rabbitmq": stack.backends.rabbitmq.pid}
    before = cpu.cpu_seconds(pids)
    result = celery_runner.run(
        stack.amqp_url, jobs, confirm_publish=confirm_publish, timeout=completion_timeout(jobs)
    )
    after = cpu.cpu_seconds(pids)
    log(f"{result.mode} N={jobs}: e2e {result.end_to_end_rate:,.0f} jobs/s")
    return {
        "submit_rate": result.submit_rate,
        "end_to_end_rate": result.end_to_end_rate,
        "cpu_per_1000": _cpu_per_1000(cpu.delta(before, after), jobs),
    }


def _run_raw(stack: Stack, jobs: int) -> dict[str, Any]:
    pids = {"rabbitmq": stack.backends.rabbitmq.pid}
    before = cpu.cpu_seconds(pids)
    result = raw_amqp.run(stack.amqp_url, jobs, completion_timeout(jobs))
    after = cpu.cpu_seconds(pids)
    log(f"raw amqp N={jobs}: e2e {result.end_to_end_rate:,.0f} msgs/s")
    return {
        "submit_rate": result.submit_rate,
        "end_to_end_rate": result.end_to_end_rate,
        "cpu_per_1000": _cpu_per_1000(cpu.delta(before, after), jobs),
    }


RUN_ERRORS = (ours.BenchError, celery_runner.CeleryError, raw_amqp.RawError, grpc.RpcError)


def _recorded(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One system's run; a failure is recorded in the results (and the table) and the other
    systems still run, so one stuck run does not throw away an hour of figures."""
    try:
        return measure()
    except RUN_ERRORS as error:
        reason = describe(error)
        log(f"{name} failed: {reason}")
        return {"error": reason}


def describe(error: Exception) -> str:
    """One line: a gRPC error's code and details (its str() is a multi-line dump)."""
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
        return f"{error.code().name}: {error.details()}"
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _scale(
    options: Options, stack: Stack, clients: ours.Clients, worker_pid: int | None, jobs: int
) -> dict[str, Any]:
    """Every system at one N, interleaved within each repeat so they share the same conditions."""
    repeats = repeats_for(options, jobs)
    per_repeat: list[dict[str, Any]] = []
    for repeat in range(1, repeats + 1):
        log(f"N={jobs:,} repeat {repeat}/{repeats}")
        runs: dict[str, Any] = {}
        for mode in options.modes:
            runs[mode] = _recorded(mode, functools.partial(_run_ours, stack, clients, mode, jobs))
        # The baselines start on a quiet stack too: our event store done with the runs above.
        ours.wait_idle(clients.postgres_dsn, clients.broker, completion_timeout(jobs))
        if worker_pid is not None:
            for confirm, name in ((False, report.CELERY_DEFAULT), (True, report.CELERY_CONFIRM)):
                measure = functools.partial(
                    _run_celery, stack, worker_pid, jobs, confirm_publish=confirm
                )
                runs[name] = _recorded(name, measure)
        if options.raw:
            runs[report.RAW] = _recorded(report.RAW, lambda: _run_raw(stack, jobs))
        per_repeat.append(runs)
    return {
        "jobs": jobs,
        "processors": options.processors,
        "repeats": repeats,
        "runs": report.median_tree(per_repeat),
    }


def _rate_run(options: Options, clients: ours.Clients, window_ms: float = 0.0) -> dict[str, Any]:
    jobs = max(1, round(options.rate * options.rate_seconds))
    how = f"batched every {window_ms:g} ms" if window_ms else "single submits"
    log(f"offered load {options.rate:,.0f} jobs/s, {jobs:,} jobs, {how}")
    submit = ours.submit_at_rate(options.rate, window_ms / 1000)
    result = ours.run(clients, "rate", jobs, submit, completion_timeout(jobs))
    return {
        "offered_per_s": options.rate,
        "window_ms": window_ms,
        "jobs": jobs,
        "achieved_submit_rate": result.submit_rate,
        "latency": _quantiles(result.latency_s),
        "stats_freshness": _quantiles(result.stats_freshness_s),
        "detail_freshness": _quantiles(result.detail_freshness_s),
        "failed_jobs": result.failed_jobs,
        "refused_submits": result.refused_submits,
    }


def _queries(options: Options, stack: Stack, clients: ours.Clients) -> dict[str, Any]:
    stored = seed.count_jobs(stack.postgres_dsn)
    log(f"read-model query latency with {stored:,} jobs stored")
    timings = ours.query_latency(clients, options.query_calls)
    return {"stored": stored, **{name: _quantiles(s) for name, s in timings.items()}}


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "uname": " ".join(platform.uname()),
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
    }


def commit() -> str:
    """The git commit of the workspace (under `bazel run`, BUILD_WORKSPACE_DIRECTORY)."""
    where = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    try:
        out = subprocess.run(
            ["git", "-C", where, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def warm_up(clients: ours.Clients) -> None:
    """Connections, caches and JIT-less imports: a first small run that is not measured."""
    ours.run(clients, "warm-up", 200, ours.submit_batches, completion_timeout(200))


def run(options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "commit": commit(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = options.state_dir or Path(tmp)
        log(f"starting the stack under {root} with {options.processors} processors")
        with running_stack(root, options.processors) as stack:
            clients = ours.connect(
                stack.gateway_target,
                stack.read_model_target,
                stack.postgres_dsn,
                stack.backends.rabbitmq.info,
            )
            warm_up(clients)
            with contextlib.ExitStack() as scope:
                worker = (
                    scope.enter_context(
                        celery_runner.celery_worker(
                            stack.amqp_url, options.processors, root / "celery"
                        )
                    )
                    if options.celery
                    else None
                )
                worker_pid = worker.process.pid if worker is not None else None
                results["scales"] = [
                    _scale(options, stack, clients, worker_pid, jobs) for jobs in options.jobs
                ]
            if options.rate > 0:
                results["rate"] = _recorded("offered load", lambda: _rate_run(options, clients))
            if options.rate > 0 and options.rate_window_ms > 0:
                results["rate_batched"] = _recorded(
                    "offered load, batched",
                    lambda: _rate_run(options, clients, options.rate_window_ms),
                )
            results["queries"] = [_queries(options, stack, clients)]
            if options.stored > results["queries"][0]["stored"]:
                try:
                    seed.seed(stack.postgres_dsn, options.stored, progress=log)
                except psycopg.Error as error:
                    log(f"seeding {options.stored:,} jobs failed, no figure at scale: {error}")
                else:
                    results["queries"].append(_queries(options, stack, clients))
    results["cost_growth"] = report.cost_growth(results["scales"])
    results["targets"] = report.targets(results)
    return results


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: missing figures become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    """The inverse of _json_safe: null figures become NaN again."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def render_saved(path: Path) -> str:
    """The table of an earlier run's JSON, targets recomputed with this version's rules."""
    results = _from_json(json.loads(path.read_text()))
    results["targets"] = report.targets(results)
    return report.render(results)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM (e.g. `timeout`) unwinds like Ctrl-C does, so the servers are stopped."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--render"] and len(args) == 2:
        print(render_saved(Path(args[1])), end="")
        return 0
    options = parse_args(args)
    try:
        results = run(options)
    except (ServerError, MissingProgramError, *RUN_ERRORS) as error:
        # The stack did not start, or a run outside the per-system ones (warm-up, offered load,
        # queries) failed: the servers are already stopped; say why and fail.
        log(f"failed: {error}")
        return 1
    print(report.render(results), end="")
    if options.json_path is not None:
        path = options.json_path
        if not path.is_absolute() and "BUILD_WORKING_DIRECTORY" in os.environ:
            path = Path(os.environ["BUILD_WORKING_DIRECTORY"]) / path
        path.write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
        log(f"wrote {path}")
    return 0
