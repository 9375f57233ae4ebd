"""The real launcher on a fresh state dir, every port moved to a free one: up, reuse, restart
after a crash, data kept by `down`, `down` after a backend was killed, `--purge`, and a port
conflict. One stack serves the module; the tests run in file order."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.launcher.api import (
    ComponentState,
    LaunchError,
    Progress,
    ProgressCallback,
    StackStatus,
)
from tools.launcher.factory import stack_from
from tools.launcher.remote import RemoteStack
from tools.launcher.stack import LocalStack
from tools.launcher.state import StateStore
from tools.testing.servers import procs
from tools.testing.servers.net import free_ports
from tools.testing.servers.procs import ProcessId

PROCESSORS = 2
_JOB_TIMEOUT_S = 60.0
_RESTART_TIMEOUT_S = 90.0


_KEYS = [
    "RABBITMQ_AMQP", "RABBITMQ_MANAGEMENT", "RABBITMQ_PROMETHEUS", "POSTGRES", "REDIS",
    "MONGO", "PROMETHEUS", "ALERTMANAGER", "GATEWAY_GRPC", "GATEWAY_HTTP",
    "READ_MODEL_GRPC", "READ_MODEL_HTTP", "RABBITMQ_EPMD", "RABBITMQ_DIST",
    "METRICS_ENGINE_HTTP",
]  # fmt: skip


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _env(state: Path) -> dict[str, str]:
    """Free ports for everything; processor replicas need PROCESSORS consecutive ones."""
    for _ in range(50):
        *ports, base = free_ports(len(_KEYS) + 1)
        replicas = [base + i for i in range(PROCESSORS)]
        if set(replicas).isdisjoint(ports) and all(_bindable(p) for p in replicas[1:]):
            break
    else:
        raise RuntimeError("no block of free ports for the processors")
    env = {f"OBSERVATORY_{k}_PORT": str(p) for k, p in zip(_KEYS, ports, strict=True)}
    env["OBSERVATORY_PROCESSOR_HTTP_PORT"] = str(base)
    env["OBSERVATORY_STATE_DIR"] = str(state)
    return env


def _up(stack: LocalStack, progress: ProgressCallback | None = None) -> StackStatus:
    """`stack.up()`, failing the test with the failed component's log tail."""
    try:
        return stack.up(progress)
    except LaunchError as error:
        pytest.fail(f"up failed: {error}\n{error.log_tail}", pytrace=False)


def _local(env: dict[str, str]) -> LocalStack:
    stack = stack_from(env, processors=PROCESSORS)
    assert isinstance(stack, LocalStack)
    return stack


def _stack_processes(state: Path) -> list[int]:
    """Every process whose working dir or command line is under the state dir."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd.startswith(str(state)) or str(state) in cmdline:
            process = ProcessId.of(int(name))
            if process is not None and process.running():
                found.append(int(name))
    return found


def _kill_recorded(store: StateStore) -> None:
    record = store.read()
    if record is None:
        return
    recorded = {record.supervisor}
    for component in record.components:
        recorded |= component.process_ids()
    procs.kill_all(procs.descendants(recorded))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # Short: the path is in the processes' command lines and PostgreSQL's socket paths.
    return _env(tmp_path_factory.mktemp("observatory") / "state")


@pytest.fixture(scope="module")
def stack(env: dict[str, str]) -> Iterator[LocalStack]:
    local = _local(env)
    try:
        yield local
    finally:
        try:
            local.down()
        finally:
            _kill_recorded(local.store)  # whatever `down` could not stop


def _component(status: StackStatus, name: str) -> tuple[ComponentState, int | None, int]:
    found = next(c for c in status.components if c.name == name)
    return found.state, found.pid, found.restarts


def _post(url: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (a local http URL)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (local URL)
        result: dict[str, object] = json.load(response)
    return result


def _job_status(read_model_http: str, job_id: str) -> str:
    try:
        with urllib.request.urlopen(f"{read_model_http}/jobs/{job_id}", timeout=5) as response:  # noqa: S310
            detail = json.load(response)
    except OSError:
        return ""
    return str(detail.get("job", {}).get("status", ""))


def _wait_completed(read_model_http: str, job_id: str) -> None:
    deadline = time.monotonic() + _JOB_TIMEOUT_S
    while (status := _job_status(read_model_http, job_id)) != "JOB_STATUS_COMPLETED":
        assert time.monotonic() < deadline, f"job {job_id} is {status!r}"
        time.sleep(0.5)


def _scrape_jobs(prometheus: str) -> list[str]:
    """The job of each scrape target, once Prometheus has loaded its targets."""
    deadline = time.monotonic() + _JOB_TIMEOUT_S
    while True:
        url = f"{prometheus}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local URL)
            targets = json.load(response)["data"]["activeTargets"]
        if targets or time.monotonic() >= deadline:
            return [target["labels"]["job"] for target in targets]
        time.sleep(0.5)


submitted: list[str] = []


def test_up_starts_every_component_and_a_job_completes(stack: LocalStack) -> None:
    events: list[Progress] = []
    status = _up(stack, events.append)

    assert status.running
    assert {c.state for c in status.components} == {ComponentState.RUNNING}
    # 4 backends, gateway, read model, metrics engine, the processors, 2 monitors
    assert len(status.components) == 9 + PROCESSORS
    assert {e.component for e in events if e.state is ComponentState.RUNNING} == {
        c.name for c in status.components
    }
    jobs = _scrape_jobs(status.endpoints.web_uis["Prometheus"])
    assert jobs.count("processor") == PROCESSORS  # one target per replica
    assert {"gateway", "read_model", "metrics_engine", "rabbitmq"} <= set(jobs)
    reply = _post(
        f"{status.endpoints.gateway_http}/jobs", {"type": "echo", "payload": {"message": "hello"}}
    )
    job_id = str(reply["job_id"])
    _wait_completed(status.endpoints.read_model_http, job_id)
    submitted.append(job_id)


def test_up_again_reuses_the_running_stack(stack: LocalStack) -> None:
    before = {c.name: c.pid for c in stack.status().components}
    events: list[Progress] = []
    status = _up(stack, events.append)
    assert {c.name: c.pid for c in status.components} == before
    assert events == []  # nothing was started


def test_remote_mode_probes_an_existing_deployment(stack: LocalStack) -> None:
    endpoints = stack.status().endpoints
    remote = stack_from({}, gateway=endpoints.gateway_grpc, read_model=endpoints.read_model_grpc)
    assert isinstance(remote, RemoteStack)
    status = remote.up()
    assert status.running
    assert {c.state for c in status.components} == {ComponentState.EXTERNAL}
    assert remote.down().stopped == ()


def test_a_killed_processor_is_restarted_and_shown_as_such(stack: LocalStack) -> None:
    _, old_pid, _ = _component(stack.status(), "processor-1")
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    seen: list[ComponentState] = []
    deadline = time.monotonic() + _RESTART_TIMEOUT_S
    while True:
        state, pid, restarts = _component(stack.status(), "processor-1")
        seen.append(state)
        if state is ComponentState.RUNNING and restarts == 1:
            break
        assert time.monotonic() < deadline, f"processor-1 still {state} after the kill"
        time.sleep(0.1)
    assert ComponentState.RESTARTING in seen
    assert pid not in (None, old_pid)


def test_down_stops_everything_after_the_supervisor_was_killed_and_keeps_the_data(
    stack: LocalStack,
) -> None:
    record = stack.store.read()
    assert record is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    procs.wait_gone([record.supervisor], 10)

    report = stack.down()

    assert report.already_gone == ()
    assert set(report.stopped) == {c.name for c in record.components}
    assert _stack_processes(stack.store.root) == []
    status = _up(stack)
    _wait_completed(status.endpoints.read_model_http, submitted[0])


def test_up_starts_a_crashed_backend_again(stack: LocalStack) -> None:
    _, old_pid, _ = _component(stack.status(), "redis")
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + _RESTART_TIMEOUT_S
    while (state := _component(stack.status(), "redis")[0]) is not ComponentState.FAILED:
        assert time.monotonic() < deadline, f"redis still {state} after the kill"
        time.sleep(0.2)
    assert not stack.status().running

    status = _up(stack)

    assert status.running
    _, pid, restarts = _component(status, "redis")
    assert pid not in (None, old_pid)
    assert restarts == 1


def test_down_after_a_backend_was_killed_stops_everything_else(stack: LocalStack) -> None:
    record = stack.store.read()
    assert record is not None
    _, redis_pid, _ = _component(stack.status(), "redis")
    assert redis_pid is not None
    os.kill(redis_pid, signal.SIGKILL)

    report = stack.down()

    assert report.already_gone == ("redis",)
    others = {c.name for c in record.components} - {"redis"}
    assert set(report.stopped) == others
    recorded = {record.supervisor}
    for component in record.components:
        recorded |= component.process_ids()
    assert [p for p in recorded if p.running()] == []
    assert _stack_processes(stack.store.root) == []
    assert {c.state for c in stack.status().components} == {ComponentState.STOPPED}


def test_purge_deletes_the_data(stack: LocalStack) -> None:
    assert (stack.store.root / "postgres").is_dir()
    report = stack.down(purge=True)
    assert report.purged
    assert not stack.store.root.exists()


def test_a_port_in_use_is_named_with_its_setting(tmp_path: Path) -> None:
    env = _env(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["OBSERVATORY_REDIS_PORT"])))
        squatter.listen()
        stack = _local(env)
        with pytest.raises(LaunchError) as raised:
            stack.up()
    message = str(raised.value)
    assert f"port {env['OBSERVATORY_REDIS_PORT']} (Redis) is in use by pid {os.getpid()}" in message
    assert "OBSERVATORY_REDIS_PORT=<free port>" in message
    assert stack.store.read() is None  # nothing was started
