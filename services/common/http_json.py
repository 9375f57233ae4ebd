"""JSON over HTTP with the standard library (Prometheus, Alertmanager, RabbitMQ management)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any


class HttpError(RuntimeError):
    """A non-2xx answer; `status` and `body` say what the server replied."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def request_json(
    method: str,
    url: str,
    payload: object = None,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> Any:
    """Sends `payload` (if not None) as JSON; returns the decoded reply (None if empty)."""
    headers = {"Accept": "application/json"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as error:
        raise HttpError(method, url, error.code, error.read().decode("utf-8", "replace")) from error
    return json.loads(body) if body.strip() else None


def get_json(url: str, *, auth: tuple[str, str] | None = None, timeout: float = 10.0) -> Any:
    return request_json("GET", url, auth=auth, timeout=timeout)


def post_json(
    url: str, payload: object, *, auth: tuple[str, str] | None = None, timeout: float = 10.0
) -> Any:
    return request_json("POST", url, payload, auth=auth, timeout=timeout)


def get_text(url: str, *, timeout: float = 10.0) -> str:
    """A GET whose body is text (a Prometheus /metrics page)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        raise HttpError("GET", url, error.code, error.read().decode("utf-8", "replace")) from error
