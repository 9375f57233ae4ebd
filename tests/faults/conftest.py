"""Fault tests: each module gets its own pipeline (a fault must not leak into other modules)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Stack, running_stack
from tools.testing.servers.fixtures import state_dir

pytest_plugins = ["tools.testing.servers.pytest_plugin"]


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A module sets RESTARTABLE_BACKENDS = True to get backends it can stop and start again."""
    restartable = bool(getattr(request.module, "RESTARTABLE_BACKENDS", False))
    root = state_dir(tmp_path_factory, "faults")
    with running_stack(root, restartable=restartable) as running:
        yield running
