"""The pytest markers of tests that use real servers.

Kept apart from the plugin so that a conftest.py can declare them without importing the plugin
(a plugin imported before pytest loads it misses pytest's assertion rewriting).
"""

from __future__ import annotations

import pytest

MARKERS = {"integration": "starts real servers (Bazel tag `integration`; slower)"}


def register_markers(config: pytest.Config) -> None:
    """Declares MARKERS once, whether called from the plugin, a conftest, or both.

    A test module's `pytestmark` is evaluated when the module is imported, before pytest loads
    the module's `pytest_plugins`: a conftest.py that calls this avoids an unknown-mark warning.
    """
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {description}")
