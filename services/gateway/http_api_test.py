"""The HTTP API over a fake JobService: status codes, body shapes, limits, docs, correlation."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from services.gateway import validation
from services.gateway.config import Limits
from services.gateway.fake_jobs import FakeJobs
from services.gateway.http_api import build_app
from services.gateway.service import UnavailableError

LIMITS = Limits(max_payload_bytes=1024, max_body_bytes=4096)


@pytest.fixture
def jobs() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def client(jobs: FakeJobs) -> TestClient:
    return TestClient(build_app(jobs, LIMITS, {"fake": lambda: True}))


def test_submit_answers_202_with_the_new_job(client: TestClient, jobs: FakeJobs) -> None:
    response = client.post("/jobs", json={"type": "echo", "payload": {"message": "hi"}})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "event_id", "status", "duplicate"}
    assert uuid.UUID(body["job_id"]) and uuid.UUID(body["event_id"])
    assert (body["status"], body["duplicate"]) == ("JOB_STATUS_PENDING", False)
    assert body["job_id"] in jobs.jobs


def test_the_correlation_id_is_passed_on_and_echoed(client: TestClient, jobs: FakeJobs) -> None:
    response = client.post("/jobs", json={"type": "noop"}, headers={"X-Correlation-Id": "t-42"})
    assert response.headers["X-Correlation-Id"] == "t-42"
    assert jobs.correlation_ids == ["t-42"]
    generated = client.post("/jobs", json={"type": "noop"}).headers["X-Correlation-Id"]
    assert uuid.UUID(generated)
    assert jobs.correlation_ids[-1] == generated
    submitted = len(jobs.correlation_ids)
    refused = client.post("/jobs", json={"type": "noop"}, headers={"X-Correlation-Id": "x" * 129})
    assert refused.status_code == 400
    assert "X-Correlation-Id" in refused.text
    assert len(jobs.correlation_ids) == submitted


def test_resubmission_with_the_same_key_returns_the_same_job(client: TestClient) -> None:
    first = client.post("/jobs", json={"type": "noop", "idempotency_key": "once"}).json()
    second = client.post("/jobs", json={"type": "noop", "idempotency_key": "once"}).json()
    assert second["job_id"] == first["job_id"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "noop", "priority": 10}, "priority"),
        ({"type": "nope"}, "type"),
        ({"payload": {}}, "type"),
        ({"type": "sleep", "payload": {"seconds": "long"}}, "payload.seconds"),
        ({"type": "noop", "max_attempts": 0}, "max_attempts"),
        ({"type": "noop", "timeout_seconds": -1}, "timeout_seconds"),
        ({"type": "echo", "payload": {"message": "x" * 2000}}, "payload"),
    ],
)
def test_bad_input_is_400_naming_the_field(client: TestClient, body: object, field: str) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"
    assert field in [d["field"] for d in response.json()["details"]]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/jobs", content=b"{not json", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "body"


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/jobs", content=b"x" * (LIMITS.max_body_bytes + 1))
    assert response.status_code == 413


def test_batch_is_all_or_nothing(client: TestClient, jobs: FakeJobs) -> None:
    specs: list[dict[str, object]] = [{"type": "noop"} for _ in range(4)]
    specs[3]["priority"] = 12
    response = client.post("/jobs:batch", json={"specs": specs})
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["details"]] == ["specs[3].priority"]
    assert jobs.jobs == {}
    specs[3]["priority"] = 2
    response = client.post("/jobs:batch", json={"specs": specs})
    assert response.status_code == 202
    assert len(response.json()["results"]) == 4
    assert len(jobs.jobs) == 4


def test_get_cancel_retry_and_their_errors(client: TestClient) -> None:
    job_id = client.post("/jobs", json={"type": "noop"}).json()["job_id"]
    assert client.get(f"/jobs/{job_id}").json()["job"]["id"] == job_id
    cancelled = client.post(f"/jobs/{job_id}/cancel")
    assert cancelled.json()["job"]["status"] == "JOB_STATUS_CANCELLED"
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 409
    assert client.post(f"/jobs/{job_id}/retry").json()["job"]["status"] == "JOB_STATUS_PENDING"
    assert client.post(f"/jobs/{job_id}/retry").status_code == 409
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
    malformed = client.get("/jobs/not-a-uuid")
    assert malformed.status_code == 400
    assert malformed.json()["details"] == [{"field": "job_id", "problem": "must be a UUID"}]
    assert client.post("/jobs:retry-failed").json() == {"retried": 0}


def test_backend_failure_is_503_with_retry_after(client: TestClient, jobs: FakeJobs) -> None:
    jobs.fail_with = UnavailableError("database unavailable: connection refused")
    response = client.post("/jobs", json={"type": "noop"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 503


def test_openapi_and_offline_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/jobs", "/jobs:batch", "/jobs/{job_id}", "/jobs/{job_id}/cancel"):
        assert path in spec["paths"]
    schema = spec["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert "priority" in schema["schema"]["properties"]
    docs = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_the_openapi_document_lists_the_answers_the_api_gives(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/jobs", "post"): {"202", "400", "413", "503"},
        ("/jobs:batch", "post"): {"202", "400", "413", "503"},
        ("/jobs/{job_id}", "get"): {"200", "400", "404", "503"},
        ("/jobs/{job_id}/cancel", "post"): {"200", "400", "404", "409", "503"},
        ("/jobs/{job_id}/retry", "post"): {"200", "400", "404", "409", "503"},
    }
    for (path, method), codes in expected.items():
        assert set(paths[path][method]["responses"]) == codes, (path, method)
    # What the API answers for them: a bad job id is a 400 (never FastAPI's 422), unknown a 404.
    assert client.get("/jobs/not-a-uuid").status_code == 400
    assert client.post("/jobs/not-a-uuid/cancel").status_code == 400


def test_the_documented_limits_are_the_enforced_ones(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    timeout = body["properties"]["timeout_seconds"]
    assert timeout["maximum"] == validation.MAX_TIMEOUT_SECONDS
    over = client.post("/jobs", json={"type": "noop", "timeout_seconds": timeout["maximum"] + 1})
    assert over.status_code == 400
    at = client.post("/jobs", json={"type": "noop", "timeout_seconds": timeout["maximum"]})
    assert at.status_code == 202
    for field in ("priority", "max_attempts"):
        top = int(body["properties"][field]["maximum"])  # JSON Schema numbers may print as 9.0
        assert client.post("/jobs", json={"type": "noop", field: top}).status_code == 202
        assert client.post("/jobs", json={"type": "noop", field: top + 1}).status_code == 400
    assert client.post("/jobs", json={"type": "no.such.type"}).status_code == 400
    assert "no.such.type" not in body["properties"]["type"]["enum"]


def test_ops_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["ready"] is True
    client.post("/jobs", json={"type": "noop"})
    metrics = client.get("/metrics").text
    assert 'gateway_jobs_submitted_total{outcome="accepted",transport="http"}' in metrics
    assert 'gateway_jobs_accepted_by_type_total{type="noop"}' in metrics
    assert "gateway_request_seconds_bucket" in metrics
