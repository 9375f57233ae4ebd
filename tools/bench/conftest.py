"""Declares the `integration` marker before the test modules (which use it) are imported."""

import pytest

from tools.testing.servers.markers import register_markers


def pytest_configure(config: pytest.Config) -> None:
    register_markers(config)
