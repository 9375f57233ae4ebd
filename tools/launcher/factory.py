"""Which stack the front ends talk to: the local one, or an existing deployment.

`OBSERVATORY_GATEWAY` and `OBSERVATORY_READ_MODEL` (host:port of their gRPC servers, or the
`--gateway` / `--read-model` flags) select a remote stack; the local stack is then not used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tools.launcher.api import Endpoints, Stack
from tools.launcher.ports import resolve_ports
from tools.launcher.remote import RemoteStack
from tools.launcher.stack import LocalStack
from tools.launcher.state import StateStore, state_dir

DEFAULT_PROCESSORS = 2


def remote_endpoints(gateway: str, read_model: str, environ: Mapping[str, str]) -> Endpoints:
    """Endpoints of a deployment; the HTTP URLs default to the services' default ports."""
    for name, target in (("OBSERVATORY_GATEWAY", gateway), ("OBSERVATORY_READ_MODEL", read_model)):
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{name}: expected host:port, got {target!r}")
    gateway_http = environ.get(
        "OBSERVATORY_GATEWAY_HTTP", f"http://{gateway.rpartition(':')[0]}:8080"
    )
    read_model_http = environ.get(
        "OBSERVATORY_READ_MODEL_HTTP", f"http://{read_model.rpartition(':')[0]}:8081"
    )
    return Endpoints(
        gateway_grpc=gateway,
        gateway_http=gateway_http,
        read_model_grpc=read_model,
        read_model_http=read_model_http,
        web_uis={
            "Gateway API docs": f"{gateway_http}/docs",
            "Read model API docs": f"{read_model_http}/docs",
        },
    )


def stack_from(
    environ: Mapping[str, str] | None = None,
    *,
    gateway: str | None = None,
    read_model: str | None = None,
    processors: int | None = None,
    state: Path | None = None,
) -> Stack:
    """The stack selected by flags (given here) or else the environment.

    Raises ValueError naming the setting when one is malformed or only one remote address is
    given.
    """
    env = os.environ if environ is None else environ
    gateway = gateway or env.get("OBSERVATORY_GATEWAY", "").strip() or None
    read_model = read_model or env.get("OBSERVATORY_READ_MODEL", "").strip() or None
    if gateway or read_model:
        if not gateway:
            raise ValueError("OBSERVATORY_GATEWAY (--gateway) is required with a read model")
        if not read_model:
            raise ValueError("OBSERVATORY_READ_MODEL (--read-model) is required with a gateway")
        return RemoteStack(remote_endpoints(gateway, read_model, env))
    count = processors if processors is not None else _processors(env)
    if count < 1:
        raise ValueError(f"--processors: expected at least 1, got {count}")
    return LocalStack(StateStore(state or state_dir(env)), resolve_ports(env), count)


def _processors(environ: Mapping[str, str]) -> int:
    raw = environ.get("OBSERVATORY_PROCESSORS", "").strip()
    if not raw:
        return DEFAULT_PROCESSORS
    if not raw.isdigit():
        raise ValueError(f"OBSERVATORY_PROCESSORS: expected a number, got {raw!r}")
    return int(raw)
