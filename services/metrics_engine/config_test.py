"""Metrics engine settings: local defaults, overrides, and bad values named by their variable."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.metrics_engine.config import MetricsEngineConfig


def test_local_defaults_and_overrides() -> None:
    config = MetricsEngineConfig.from_env({})
    assert (config.prefetch, config.batch_events, config.batch_wait_s) == (200, 1000, 0.025)
    assert config.http_host == "127.0.0.1"
    tuned = MetricsEngineConfig.from_env(
        {"METRICS_ENGINE_PREFETCH": "50", "METRICS_ENGINE_BATCH_EVENTS": "5000"}
    )
    assert (tuned.prefetch, tuned.batch_events) == (50, 5000)
    assert config.dedupe_window_s == 24 * 3600
    hour = MetricsEngineConfig.from_env({"METRICS_ENGINE_DEDUPE_WINDOW_S": "3600"})
    assert hour.dedupe_window_s == 3600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_ENGINE_PREFETCH", "0"),
        ("METRICS_ENGINE_BATCH_EVENTS", "0"),
        ("METRICS_ENGINE_BATCH_EVENTS", "lots"),
        ("METRICS_ENGINE_BATCH_WAIT_S", "-1"),
        ("METRICS_ENGINE_DEDUPE_WINDOW_S", "59"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        MetricsEngineConfig.from_env({name: value})
