"""Cursor paging shared by the List calls: page sizes and opaque page tokens.

A token is base64url(JSON) of the last row's sort key plus a fingerprint of the filters it was
issued for, so a token reused with other filters is rejected instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from google.protobuf.message import Message

from services.read_model.errors import InvalidArgumentError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgumentError("page_size", f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def filters_fingerprint(request: Message) -> str:
    """A digest of the request without its paging fields."""
    filters = type(request)()
    filters.CopyFrom(request)
    filters.ClearField("page_size")
    filters.ClearField("page_token")
    return hashlib.sha256(filters.SerializeToString(deterministic=True)).hexdigest()[:16]


def encode_token(key: list[Any], fingerprint: str) -> str:
    raw = json.dumps({"k": key, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, fingerprint: str, key_length: int) -> list[Any] | None:
    """The sort key after which the page starts; None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        key, issued_for = data["k"], data["f"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidArgumentError(
            "page_token", "malformed; pass a next_page_token unchanged"
        ) from None
    if not isinstance(key, list) or len(key) != key_length:
        raise InvalidArgumentError("page_token", "malformed; pass a next_page_token unchanged")
    if issued_for != fingerprint:
        raise InvalidArgumentError("page_token", "was issued for different filters")
    return key
