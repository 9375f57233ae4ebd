"""Serving a server as a pytest fixture: start, yield, stop; a death fails the test.

`pytest_plugin` defines the standard fixtures with `server_fixture`; a test module can make
more, e.g. `redis_module = server_fixture("redis_module", RedisServer, scope="module")`.
This module is not itself a plugin, so importing it does not defeat pytest's assertion
rewriting of the plugin.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from tools.testing.servers.base import Server

S = TypeVar("S", bound=Server[Any])
Scope = Literal["function", "class", "module", "package", "session"]

LOG_LINES = 60

# Servers whose death was already reported as a test failure (not to be reported again).
_reported_dead: weakref.WeakSet[Server[Any]] = weakref.WeakSet()


def death_report(server: Server[Any]) -> str:
    how = server.exit_reason()
    detail = f"pid {server.pid}, {how}" if how else f"pid {server.pid}"
    return f"{server.name} server died during the test ({detail})\n{server.log_report(LOG_LINES)}"


def report_death_once(server: Server[Any]) -> str | None:
    """The death report of a crashed server the first time it is asked for; else None."""
    if not server.crashed() or server in _reported_dead:
        return None
    _reported_dead.add(server)
    return death_report(server)


def serve(server: S) -> Iterator[S]:
    """Starts `server`, yields it, stops it; fails the test if it died unnoticed meanwhile."""
    server.start()
    try:
        yield server
    finally:
        report = report_death_once(server)
        server.stop()
    if report is not None:
        pytest.fail(report, pytrace=False)


def state_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    # Under Bazel TEST_TMPDIR is the test's scratch space (and is cleaned by Bazel).
    if bazel_tmp := os.environ.get("TEST_TMPDIR"):
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=bazel_tmp))
    return factory.mktemp(name)


def server_fixture(name: str, factory: Callable[[Path], S], *, scope: Scope = "function") -> Any:
    """A fixture called `name` serving `factory(state_dir)`; assign it to a module global."""

    @pytest.fixture(name=name, scope=scope)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S]:
        yield from serve(factory(state_dir(tmp_path_factory, name)))

    return fixture
