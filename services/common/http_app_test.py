"""/readyz answers in bounded time, whatever its probes do."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from services.common.http_app import READINESS_TIMEOUT_SECONDS, ops_app


def test_readyz_answers_503_in_time_while_a_probe_hangs() -> None:
    release = threading.Event()

    def frozen_store() -> None:
        release.wait(60)  # a store that stopped answering

    app = ops_app("test", {"frozen": frozen_store, "fine": lambda: True})
    try:
        with TestClient(app) as client:
            began = time.monotonic()
            answer = client.get("/readyz")
            waited = time.monotonic() - began
        assert answer.status_code == 503
        assert set(answer.json()["failures"]) == {"frozen"}
        assert waited < READINESS_TIMEOUT_SECONDS + 5, waited  # not the store's hang
    finally:
        release.set()


def test_readyz_reports_failing_and_passing_probes() -> None:
    def broken() -> None:
        raise ConnectionError("refused")

    with TestClient(ops_app("test", {"ok": lambda: None})) as client:
        assert client.get("/readyz").status_code == 200
    with TestClient(ops_app("test", {"down": broken, "no": lambda: False})) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["failures"] == {"down": "ConnectionError: refused", "no": "not ready"}
