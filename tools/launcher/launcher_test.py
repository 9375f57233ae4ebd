"""The launcher's pure parts: state file, start order, restart backoff, ports, monitoring config."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tools.launcher.api import ComponentState
from tools.launcher.factory import stack_from
from tools.launcher.monitoring import (
    INFRA_WEBHOOK_URL,
    alertmanager_config,
    alertmanager_template,
    infra_dir,
    prometheus_config,
)
from tools.launcher.plan import RESTART_CAP_S, Component, components, restart_delay, waves
from tools.launcher.ports import (
    ALL_PORTS,
    LOCAL_PORTS,
    PortUse,
    conflict_message,
    conflicts,
    duplicate_ports,
    port_uses,
    resolve_ports,
)
from tools.launcher.remote import RemoteStack
from tools.launcher.stack import LocalStack
from tools.launcher.state import ComponentRecord, StackRecord, StateStore, state_dir

DEFAULTS = resolve_ports({})


def test_state_file_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.create()
    record = StackRecord(
        supervisor_pid=10,
        supervisor_start_time=20,
        started_at=1.5,
        processors=2,
        ports=DEFAULTS,
        phase="running",
        components=(
            ComponentRecord(
                name="rabbitmq",
                state=ComponentState.RUNNING.value,
                pid=11,
                start_time=21,
                processes=((11, 21), (12, 22)),
                ports=(5672, 15672),
                restarts=1,
            ),
        ),
    )
    store.write(record)
    assert store.read() == record
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".stack-")] == []


def test_state_dir_prefers_the_explicit_setting_then_xdg() -> None:
    assert state_dir({"OBSERVATORY_STATE_DIR": "/x/y", "XDG_STATE_HOME": "/s"}) == Path("/x/y")
    assert state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/observatory")
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/observatory")


def test_every_component_starts_after_what_it_needs() -> None:
    parts = components(DEFAULTS, 3)
    order = waves(parts)
    position = {c.name: i for i, wave in enumerate(order) for c in wave}
    for part in parts:
        assert all(position[need] < position[part.name] for need in part.needs), part
    assert {c.name for c in order[0]} == {"rabbitmq", "postgres", "redis", "mongo"}
    assert position["prometheus"] == len(order) - 1
    assert {"processor-1", "processor-2", "processor-3"} <= set(position)


def test_a_dependency_cycle_is_refused() -> None:
    a = Component("a", "service", "a", ("b",), ())
    b = Component("b", "service", "b", ("a",), ())
    with pytest.raises(ValueError, match="cycle"):
        waves([a, b])


def test_restart_delay_doubles_up_to_the_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays[0] == 1.0
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert delays[-1] == RESTART_CAP_S
    assert delays[1] == 2 * delays[0]


def test_only_services_are_restarted() -> None:
    restartable = {c.name for c in components(DEFAULTS, 1) if c.restartable}
    assert restartable == {"gateway", "processor-1", "metrics_engine", "read_model"}


def test_port_overrides_apply_and_bad_ones_name_the_variable() -> None:
    ports = resolve_ports({"OBSERVATORY_POSTGRES_PORT": "15432"})
    assert ports["POSTGRES"] == 15432
    assert ports["REDIS"] == 6379
    with pytest.raises(ValueError, match="OBSERVATORY_REDIS_PORT"):
        resolve_ports({"OBSERVATORY_REDIS_PORT": "redis"})


def test_port_table_has_unique_ports_and_settings() -> None:
    assert len({spec.default for spec in ALL_PORTS}) == len(ALL_PORTS)
    assert len({spec.env_var for spec in ALL_PORTS}) == len(ALL_PORTS)
    assert set(LOCAL_PORTS) <= set(ALL_PORTS)


def test_each_processor_replica_gets_its_own_port() -> None:
    uses = port_uses(DEFAULTS, 3)
    processor_ports = [u.port for u in uses if u.what.startswith("processor-")]
    assert processor_ports == [8090, 8091, 8092]
    assert duplicate_ports(uses) == []


def test_an_override_that_collides_is_reported_with_both_variables() -> None:
    uses = port_uses(resolve_ports({"OBSERVATORY_REDIS_PORT": "5432"}), 1)
    (problem,) = duplicate_ports(uses)
    assert "OBSERVATORY_POSTGRES_PORT" in problem
    assert "OBSERVATORY_REDIS_PORT" in problem


def test_conflict_message_names_port_holder_and_setting() -> None:
    use = PortUse(5432, "PostgreSQL", "OBSERVATORY_POSTGRES_PORT")
    message = conflict_message(use, [(1234, "postgres")])
    assert message == (
        "port 5432 (PostgreSQL) is in use by pid 1234 (postgres); "
        "stop it or set OBSERVATORY_POSTGRES_PORT=<free port>"
    )
    assert "another process" in conflict_message(use, [])


def test_only_taken_ports_are_conflicts() -> None:
    uses = port_uses(DEFAULTS, 1)
    found = conflicts(uses, lambda port: port == 6379, lambda port: [(7, "redis-server")])
    assert len(found) == 1
    assert found[0].startswith("port 6379 (Redis) is in use by pid 7 (redis-server)")


def _infra_jobs() -> dict[str, str | None]:
    """job_name -> metrics_path of infra/prometheus/prometheus.yml (a tiny, line-based read)."""
    jobs: dict[str, str | None] = {}
    current = ""
    for line in (infra_dir() / "prometheus" / "prometheus.yml").read_text().splitlines():
        if match := re.match(r"\s*- job_name:\s*(\S+)", line):
            current = match.group(1)
            jobs[current] = None
        elif match := re.match(r"\s*metrics_path:\s*(\S+)", line):
            jobs[current] = match.group(1)
    return jobs


def test_prometheus_config_keeps_infra_jobs_and_scrapes_every_replica() -> None:
    ports = resolve_ports({"OBSERVATORY_PROCESSOR_HTTP_PORT": "9500"})
    config = prometheus_config(ports, 3)
    scrape = config["scrape_configs"]
    assert isinstance(scrape, list)
    jobs = {job["job_name"]: job for job in scrape}
    assert {name: job.get("metrics_path") for name, job in jobs.items()} == _infra_jobs()
    targets = jobs["processor"]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:9500", "127.0.0.1:9501", "127.0.0.1:9502"]
    rule_files = config["rule_files"]
    assert isinstance(rule_files, list)
    assert rule_files and all(Path(rule).is_file() for rule in rule_files)


def test_alertmanager_webhook_points_at_the_local_read_model() -> None:
    text = alertmanager_config(alertmanager_template(), 18081)
    assert "http://127.0.0.1:18081/alerts/webhook" in text
    assert INFRA_WEBHOOK_URL not in text
    with pytest.raises(ValueError, match="webhook"):
        alertmanager_config("receivers: []\n", 18081)


def test_remote_addresses_select_a_remote_stack(tmp_path: Path) -> None:
    env = {"OBSERVATORY_GATEWAY": "gw:50051", "OBSERVATORY_READ_MODEL": "rm:50052"}
    stack = stack_from(env)
    assert isinstance(stack, RemoteStack)
    assert stack.endpoints.gateway_grpc == "gw:50051"
    assert set(stack.endpoints.web_uis) == {"Gateway API docs", "Read model API docs"}
    local = stack_from({"OBSERVATORY_STATE_DIR": str(tmp_path)})
    assert isinstance(local, LocalStack)
    assert local.processors == 2


def test_half_a_remote_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="OBSERVATORY_READ_MODEL"):
        stack_from({"OBSERVATORY_GATEWAY": "gw:50051"})
    with pytest.raises(ValueError, match="host:port"):
        stack_from({}, gateway="gw", read_model="rm:1")


def test_a_stopped_local_stack_reports_every_component_stopped(tmp_path: Path) -> None:
    stack = LocalStack(StateStore(tmp_path), DEFAULTS, 2)
    status = stack.status()
    assert not status.running
    assert {c.state for c in status.components} == {ComponentState.STOPPED}
    assert status.endpoints.web_uis["Prometheus"] == "http://127.0.0.1:9090"
