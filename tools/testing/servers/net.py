"""Loopback ports: picking free ones and probing whether a server answers on one."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Returns `count` distinct ports that were free on 127.0.0.1 a moment ago.

    All sockets stay bound until every port is picked, so the kernel cannot hand out the same
    port twice within one call.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
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
