"""AIP-158 pagination helpers shared by every List RPC.

page_size: 0 means the RPC's default, above the maximum is coerced down,
negative is INVALID_ARGUMENT. Page tokens are opaque (urlsafe base64 of a
small JSON cursor) and bound to the request's filters: a token reused with
other filters is INVALID_ARGUMENT. Tokens never grant access: every page is
authorized like the first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from leaderboard.runtime.errors import InvalidArgument


def page_size(requested: int, *, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def _fingerprint(filters: tuple[Any, ...]) -> str:
    return hashlib.blake2b(json.dumps(filters, default=str).encode(), digest_size=6).hexdigest()


def encode_token(cursor: dict[str, Any], filters: tuple[Any, ...] = ()) -> str:
    payload = json.dumps({"c": cursor, "f": _fingerprint(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_token(token: str, filters: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    """The cursor of a page token, None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        cursor = payload["c"]
        fingerprint = payload["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "malformed page token") from None
    if not isinstance(cursor, dict) or fingerprint != _fingerprint(filters):
        raise InvalidArgument("page_token", "page token does not match this request's filters")
    return cursor
