"""Unit tests of the checks, with faked system look-ups (no real PATH, imports or sockets)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from interfaces.tui.fakes import fake_probes
from interfaces.tui.ports import LOCAL_PORTS, PortSpec, resolve_port
from interfaces.tui.prereqs import (
    BAZEL,
    Check,
    Probes,
    Status,
    check_binary,
    combined_install_command,
    missing_packages,
    required_ok,
    run_checks,
    summary,
)
from interfaces.tui.report import format_report


def by_name(checks: Sequence[Check], name: str) -> Check:
    matches = [check for check in checks if check.name == name]
    assert len(matches) == 1, f"{name!r}: {[c.name for c in checks]}"
    return matches[0]


def test_healthy_machine_passes_everything() -> None:
    checks = run_checks(fake_probes())

    assert all(check.status is Status.OK for check in checks)
    assert required_ok(checks)
    assert combined_install_command(checks) is None
    assert summary(checks) == f"all {len(checks)} checks passed"


def test_every_required_thing_is_checked() -> None:
    names = {check.name for check in run_checks(fake_probes())}

    binaries = {"bazel", "rabbitmq-server", "rabbitmqctl", "rabbitmq-plugins", "redis-server"}
    binaries |= {"initdb", "pg_ctl", "prometheus", "promtool", "prometheus-alertmanager"}
    binaries |= {"amtool", "tmux"}
    modules = {"grpc", "grpc_tools", "google.protobuf", "pika", "pymongo", "psycopg", "redis"}
    modules |= {"prometheus_client", "urwid", "nx_27017"}
    ports = {f"port {spec.default}" for spec in LOCAL_PORTS}
    assert binaries | modules | ports == names


def test_missing_binary_is_missing_with_its_apt_command() -> None:
    checks = run_checks(fake_probes(missing_binaries={"redis-server"}))

    redis = by_name(checks, "redis-server")
    assert redis.status is Status.MISSING
    assert redis.fix == "sudo apt-get install -y redis-server"
    assert "not found" in redis.detail
    assert not required_ok(checks)


@pytest.mark.parametrize(
    ("binary", "package"),
    [
        ("rabbitmqctl", "rabbitmq-server"),
        ("rabbitmq-plugins", "rabbitmq-server"),
        ("initdb", "postgresql"),
        ("pg_ctl", "postgresql"),
        ("promtool", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("amtool", "prometheus-alertmanager"),
        ("tmux", "tmux"),
    ],
)
def test_each_binary_names_the_debian_package_that_ships_it(binary: str, package: str) -> None:
    check = by_name(run_checks(fake_probes(missing_binaries={binary})), binary)

    assert check.fix == f"sudo apt-get install -y {package}"
    assert check.apt_package == package


def test_missing_bazel_offers_apt_and_the_wrapper() -> None:
    bazel = by_name(run_checks(fake_probes(missing_binaries={"bazel"})), "bazel")

    assert bazel.status is Status.MISSING
    assert [fix.command for fix in bazel.fixes] == [
        "sudo apt-get install -y bazel-bootstrap",
        "./bazelw",
    ]


def test_found_binary_shows_its_path() -> None:
    assert by_name(run_checks(fake_probes()), "tmux").detail == "/usr/bin/tmux"


def test_sbin_and_postgres_dirs_are_searched_beyond_path() -> None:
    asked: dict[str, Sequence[str]] = {}

    def find_binary(name: str, extra_dirs: Sequence[str]) -> str | None:
        asked[name] = extra_dirs
        return None

    base = fake_probes()
    run_checks(Probes(find_binary, base.module_version, base.probe_port, {}))

    assert "/usr/sbin" in asked["rabbitmq-server"]
    assert "/usr/sbin" in asked["rabbitmqctl"]
    assert "/usr/lib/postgresql/*/bin" in asked["initdb"]
    assert "/usr/lib/postgresql/*/bin" in asked["pg_ctl"]


def test_missing_detail_says_where_it_looked() -> None:
    check = check_binary(BAZEL, lambda name, dirs: None)
    assert check.detail == "not found in PATH"

    initdb = by_name(run_checks(fake_probes(missing_binaries={"initdb"})), "initdb")
    assert initdb.detail == "not found in PATH or /usr/lib/postgresql/*/bin"


def test_combined_command_lists_each_missing_package_once() -> None:
    missing = {"rabbitmq-server", "rabbitmqctl", "rabbitmq-plugins", "initdb", "pg_ctl", "tmux"}
    checks = run_checks(fake_probes(missing_binaries=missing))

    assert missing_packages(checks) == ["rabbitmq-server", "postgresql", "tmux"]
    assert (
        combined_install_command(checks)
        == "sudo apt-get install -y rabbitmq-server postgresql tmux"
    )


def test_combined_command_leaves_out_python_packages_and_warnings() -> None:
    checks = run_checks(fake_probes(missing_modules={"pika"}, busy_ports={5672}))

    assert combined_install_command(checks) is None


def test_missing_module_points_at_bazel() -> None:
    checks = run_checks(fake_probes(missing_modules={"nx_27017"}))

    mongo = by_name(checks, "nx_27017")
    assert mongo.status is Status.MISSING
    assert mongo.detail == "cannot import: No module named 'nx_27017'"
    assert mongo.fix == "./bazelw run //interfaces:tui"
    assert mongo.apt_package is None


def test_present_module_shows_distribution_and_version() -> None:
    assert by_name(run_checks(fake_probes()), "grpc").detail == "grpcio 1.2.3"


def test_module_that_breaks_on_import_counts_as_missing() -> None:
    def module_version(module: str, distribution: str) -> str:
        raise OSError("libpq.so.5: cannot open shared object file")

    base = fake_probes()
    checks = run_checks(Probes(base.find_binary, module_version, base.probe_port, {}))

    psycopg = by_name(checks, "psycopg")
    assert psycopg.status is Status.MISSING
    assert "libpq.so.5" in psycopg.detail


def test_busy_port_is_a_warning_naming_port_owner_and_what_to_do() -> None:
    checks = run_checks(fake_probes(busy_ports={5672}))

    amqp = by_name(checks, "port 5672")
    assert amqp.status is Status.WARNING
    assert amqp.detail == "in use"
    assert amqp.purpose == "RabbitMQ AMQP"
    commands = [fix.command for fix in amqp.fixes]
    assert commands == ["ss -ltnp 'sport = :5672'", "export OBSERVATORY_RABBITMQ_AMQP_PORT=5673"]
    # A busy port does not stop --check from passing.
    assert required_ok(checks)


def test_suggested_port_skips_other_stack_ports_and_busy_ones() -> None:
    # 8081 belongs to the read model, 8082 is busy too.
    checks = run_checks(fake_probes(busy_ports={8080, 8082}))

    gateway = by_name(checks, "port 8080")
    assert gateway.fixes[1].command == "export OBSERVATORY_GATEWAY_HTTP_PORT=8083"


def test_two_busy_ports_get_different_suggestions() -> None:
    checks = run_checks(fake_probes(busy_ports={50051, 50052}))

    suggestions = [by_name(checks, f"port {p}").fixes[1].command for p in (50051, 50052)]
    assert suggestions == [
        "export OBSERVATORY_GATEWAY_GRPC_PORT=50053",
        "export OBSERVATORY_READ_MODEL_GRPC_PORT=50054",
    ]


def test_no_spare_port_nearby_still_names_the_env_var() -> None:
    checks = run_checks(fake_probes(busy_ports=set(range(9090, 9200))))

    prometheus = by_name(checks, "port 9090")
    assert prometheus.fixes[1].command == "export OBSERVATORY_PROMETHEUS_PORT=<free port>"


def test_env_override_moves_the_probed_port() -> None:
    environ = {"OBSERVATORY_REDIS_PORT": "6380"}
    checks = run_checks(fake_probes(busy_ports={6379}, environ=environ))

    redis = by_name(checks, "port 6380")
    assert redis.status is Status.OK
    assert "OBSERVATORY_REDIS_PORT" in redis.detail
    assert not [check for check in checks if check.name == "port 6379"]


def test_bad_env_override_is_a_warning_with_a_fix() -> None:
    checks = run_checks(fake_probes(environ={"OBSERVATORY_POSTGRES_PORT": "abc"}))

    bad = by_name(checks, "OBSERVATORY_POSTGRES_PORT")
    assert bad.status is Status.WARNING
    assert bad.fix == "unset OBSERVATORY_POSTGRES_PORT"


@pytest.mark.parametrize("raw", ["0", "70000", "-1", "5432x"])
def test_resolve_port_rejects_non_ports(raw: str) -> None:
    spec = PortSpec("X", 1, "x")
    with pytest.raises(ValueError, match="OBSERVATORY_X_PORT"):
        resolve_port(spec, {"OBSERVATORY_X_PORT": raw})


def test_port_table_has_unique_ports_and_env_vars() -> None:
    defaults = [spec.default for spec in LOCAL_PORTS]
    env_vars = [spec.env_var for spec in LOCAL_PORTS]
    assert len(set(defaults)) == len(defaults) == 12
    assert len(set(env_vars)) == len(env_vars)
    assert all(v.startswith("OBSERVATORY_") and v.endswith("_PORT") for v in env_vars)


def test_summary_counts_missing_and_warnings() -> None:
    checks = run_checks(
        fake_probes(missing_binaries={"tmux", "amtool"}, missing_modules={"pika"}, busy_ports={80})
    )
    assert summary(checks) == "3 missing: amtool, tmux, pika"

    checks = run_checks(fake_probes(missing_binaries={"tmux"}, busy_ports={5672, 9093}))
    assert summary(checks) == "1 missing: tmux; 2 warnings: port 5672, port 9093"


def test_text_report_shows_markers_fixes_and_combined_command() -> None:
    checks = run_checks(fake_probes(missing_binaries={"tmux", "promtool"}, busy_ports={6379}))

    report = format_report(checks)

    assert "[missing] tmux" in report
    assert "[warn]    port 6379" in report
    assert "[ok]      bazel" in report
    assert "fix: sudo apt-get install -y tmux\n" in report
    assert "see who holds it: ss -ltnp 'sport = :6379'" in report
    assert report.rstrip().endswith("install all: sudo apt-get install -y prometheus tmux")
