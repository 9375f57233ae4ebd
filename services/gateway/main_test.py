"""The process entry point: bad configuration stops it at once with exit 2 naming the variable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from services.common.config import ConfigError, Env
from services.gateway.config import GatewayConfig


def run_main(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.gateway.main"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GATEWAY_GRPC_PORT": "http"}, "GATEWAY_GRPC_PORT"),
        ({"GATEWAY_MAX_PAYLOAD_BYTES": "0"}, "GATEWAY_MAX_PAYLOAD_BYTES"),
        ({"AMQP_URL": "http://x"}, "AMQP_URL"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(env: dict[str, str], variable: str) -> None:
    result = run_main(**env)
    assert result.returncode == 2
    assert variable in result.stderr


def test_defaults_are_local_and_loopback() -> None:
    config = GatewayConfig.from_env(Env({}))
    assert (config.host, config.grpc_port, config.http_port) == ("127.0.0.1", 50051, 8080)
    assert config.limits.max_payload_bytes == 64 * 1024
    assert "127.0.0.1" in config.amqp_url and "127.0.0.1" in config.postgres_dsn


def test_production_mode_requires_credentials() -> None:
    with pytest.raises(ConfigError, match="AMQP_URL"):
        GatewayConfig.from_env(Env({"OBSERVATORY_MODE": "production"}))
    config = GatewayConfig.from_env(
        Env(
            {
                "OBSERVATORY_MODE": "production",
                "AMQP_URL": "amqp://svc:s3cret@mq:5672/%2F",
                "POSTGRES_DSN": "postgresql://svc:s3cret@db:5432/observatory",
            }
        )
    )
    assert config.amqp_url.startswith("amqp://svc:")


def test_waits_for_postgresql_at_start_up_and_stops_on_sigterm() -> None:
    # Nothing listens on the port: the gateway must wait (with backoff), not exit.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway.main"],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{port}/observatory",
            "GATEWAY_GRPC_PORT": "0",
            "GATEWAY_HTTP_PORT": "0",
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    retrying = threading.Event()

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "unavailable, retrying" in line:
                retrying.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        # Importing the gateway takes seconds on a loaded machine: wait for its own word that
        # it is retrying (generously), then check it did not give up.
        assert retrying.wait(120), "".join(lines) or "no retry logged"
        time.sleep(1)
        assert process.poll() is None, "exited instead of waiting for PostgreSQL"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
        reader.join(10)
    assert process.returncode == 0, "".join(lines)
