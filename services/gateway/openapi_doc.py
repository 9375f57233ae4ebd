"""What the HTTP API's OpenAPI document says: request schemas built from the limits that
services/gateway/validation.py enforces (one source), and every answer an operation can give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.gateway import validation
from services.gateway.config import Limits
from services.jobtypes import registry

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_INVALID = {
    "type": "object",
    "required": ["error", "details"],
    "properties": {
        "error": {"type": "string", "enum": ["invalid request"]},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
            },
        },
    },
}
_WHY = {
    400: "Invalid request: every bad field is named (body, path, query or X-Correlation-Id)",
    404: "No such job",
    409: "The job's state does not allow it",
    413: "Request body over the size limit",
    501: "Not configured on this gateway",
    503: "A backing service is down or does not answer in time; retry later (Retry-After)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: 400 and 503 (any operation) plus `codes`, with their bodies."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in sorted({400, 503, *codes}):
        schema = _INVALID if code == 400 else _ERROR
        documented[code] = {
            "description": _WHY[code],
            "content": {"application/json": {"schema": schema}},
        }
    return documented


def spec_schema(limits: Limits) -> dict[str, Any]:
    """A JobSpec as JSON; the payload's fields depend on the type (checked by the job type)."""
    return {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": registry.names(), "description": "job type"},
            "payload": {
                "type": "object",
                "description": f"input of the job type, at most {limits.max_payload_bytes} bytes",
            },
            "priority": {
                "type": "integer",
                "minimum": 0,
                "maximum": validation.MAX_PRIORITY,
                "default": 0,
            },
            "idempotency_key": {
                "type": "string",
                "maxLength": validation.MAX_IDEMPOTENCY_KEY_CHARS,
            },
            "max_attempts": {
                "type": "integer",
                "minimum": 1,
                "maximum": validation.MAX_ATTEMPTS,
                "default": limits.default_max_attempts,
            },
            "timeout_seconds": {
                "type": "number",
                "minimum": validation.MIN_TIMEOUT_SECONDS,
                "maximum": validation.MAX_TIMEOUT_SECONDS,
                "default": limits.default_timeout_seconds,
            },
        },
    }


def batch_schema(limits: Limits) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specs"],
        "additionalProperties": False,
        "properties": {
            "specs": {
                "type": "array",
                "items": spec_schema(limits),
                "minItems": 1,
                "maxItems": limits.max_batch,
            }
        },
    }


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def without_framework_422(app: FastAPI) -> None:
    """FastAPI documents a 422 for every operation with parameters; this API never answers
    422 (its parameter errors are 400, documented per route): drop it from the document."""
    generate = app.openapi

    def document() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        return schema

    app.openapi = document  # type: ignore[method-assign]
