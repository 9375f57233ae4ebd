"""pytest fixtures for the real servers, with their logs where a failure is read.

Load it with `pytest_plugins = ["tools.testing.servers.pytest_plugin"]` in a test module.

Each fixture yields a started `Server` (connection details in `.info`) and, at teardown,
stops exactly the processes it started, whatever the outcome. In between:
- a server that died during the test fails that test, with the server's log tail;
- a test that failed for any other reason gets the log tails of its servers in the report.

Other scopes: see `tools.testing.servers.fixtures.server_fixture`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest

from tools.testing.servers import registry
from tools.testing.servers.alertmanager import AlertmanagerServer
from tools.testing.servers.base import Server
from tools.testing.servers.fixtures import LOG_LINES, report_death_once, server_fixture
from tools.testing.servers.markers import register_markers
from tools.testing.servers.mongo import MongoServer
from tools.testing.servers.postgres import PostgresServer
from tools.testing.servers.prometheus import PrometheusServer
from tools.testing.servers.rabbitmq import RabbitMQServer
from tools.testing.servers.redis import RedisServer


def pytest_configure(config: pytest.Config) -> None:
    register_markers(config)
    _stop_servers_on_sigterm()


def _stop_servers_on_sigterm() -> None:
    """Bazel ends a test that timed out with SIGTERM, and SIGKILLs it if it lingers: kill our
    servers at once (a graceful RabbitMQ stop alone takes ~8 s), then die of the signal."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        registry.kill_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)


def _servers_of(item: pytest.Item) -> list[Server[Any]]:
    # Every fixture value the test saw, including those requested only by other fixtures.
    values = getattr(item, "funcargs", {}).values()
    unique = {id(value): value for value in values if isinstance(value, Server)}
    return list(unique.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    for server in _servers_of(item):
        death = report_death_once(server) if report.when == "call" else None
        if death is not None and report.passed:
            report.outcome = "failed"
            report.longrepr = death
        elif death is not None:
            report.sections.append((f"{server.name} died", death))
        elif report.failed:
            report.sections.append((f"{server.name} log", server.log_report(LOG_LINES)))
    return report


rabbitmq_server = server_fixture("rabbitmq_server", RabbitMQServer)
postgres_server = server_fixture("postgres_server", PostgresServer)
redis_server = server_fixture("redis_server", RedisServer)
mongo_server = server_fixture("mongo_server", MongoServer)
prometheus_server = server_fixture("prometheus_server", PrometheusServer)
alertmanager_server = server_fixture("alertmanager_server", AlertmanagerServer)
