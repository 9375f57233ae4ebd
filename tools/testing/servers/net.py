"""Loopback ports: picking free ones and probing whether a server answers on one."""

from __future__ import annotations

import contextlib
import random
import socket
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


# Where the kernel picks the local port of an outgoing connection (Linux default 32768-60999).
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # server ports are picked from here up to the ephemeral range


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_ports(count: int) -> list[int]:
    """Returns `count` distinct ports that were free on 127.0.0.1 a moment ago.

    They lie below the kernel's ephemeral range: a server that restarts on its port (the fault
    suite) must find it free again, and a port in that range can be taken meanwhile as the local
    port of any outgoing connection on the machine (seen in CI: RabbitMQ could not listen again).
    All sockets stay bound until every port is picked, so none is handed out twice in one call.
    """
    low, _ = ephemeral_range()
    candidates = list(range(_LOWEST, low))
    random.shuffle(candidates)  # parallel test processes start their search in different places
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for port in candidates:
            if len(ports) == count:
                break
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            ports.append(port)
        while len(ports) < count:  # no room below the range (an unusual kernel setting)
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    return free_ports(1)[0]


def accepts_tcp(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of a GET to `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our URL)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None
