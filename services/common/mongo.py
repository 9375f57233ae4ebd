"""MongoDB connections (pymongo). Only features real MongoDB has: production runs `mongo`."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

Document = dict[str, Any]


def connect(
    url: str, *, app_name: str | None = None, timeout: float = 10.0
) -> MongoClient[Document]:
    """A client for a mongodb:// URL; it connects lazily, on the first operation."""
    timeout_ms = int(timeout * 1000)
    return MongoClient(
        url,
        appname=app_name,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
    )


def database(client: MongoClient[Document], name: str) -> Database[Document]:
    return client.get_database(name)
