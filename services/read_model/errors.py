"""Query errors that both faces (gRPC and HTTP) map to their own status codes."""

from __future__ import annotations

import psycopg
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from services.common.http_json import HttpError

# Backend failures a client can retry: a dependency is down or slow, the request is fine.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    PyMongoError,
    RedisError,
    OSError,  # the RabbitMQ management API unreachable
    HttpError,  # ... or answering with an error
)


class InvalidArgumentError(ValueError):
    """A request field is malformed; `field` names it (INVALID_ARGUMENT / HTTP 400)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFoundError(LookupError):
    """The thing asked for does not exist (NOT_FOUND / HTTP 404)."""
