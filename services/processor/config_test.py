"""Processor settings: defaults for local mode, and bad values named by their variable."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, Env
from services.processor.config import ProcessorConfig


def test_local_defaults() -> None:
    config = ProcessorConfig.from_env(Env({}))
    assert (config.prefetch, config.concurrency, config.http_port) == (400, 4, 8082)
    assert (config.batch_size, config.batch_wait_ms) == (100, 30)
    assert config.http_host == "127.0.0.1"
    assert (config.retry_base_ms, config.retry_max_ms, config.lease_seconds) == (1000, 60_000, 10)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROCESSOR_PREFETCH", "0"),
        ("PROCESSOR_CONCURRENCY", "many"),
        ("PROCESSOR_BATCH_SIZE", "0"),
        ("PROCESSOR_BATCH_WAIT_MS", "-1"),
        ("PROCESSOR_LEASE_SECONDS", "-1"),
        ("PROCESSOR_RETRY_MAX_MS", "10"),  # below the base delay
        ("AMQP_URL", "http://broker"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ProcessorConfig.from_env(Env({name: value}))


def test_production_mode_needs_explicit_credentials() -> None:
    with pytest.raises(ConfigError, match="AMQP_URL"):
        ProcessorConfig.from_env(Env({"OBSERVATORY_MODE": "production"}))
