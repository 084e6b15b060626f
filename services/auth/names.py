"""Rules for usernames, display names and service-account names."""

from __future__ import annotations

import re
import unicodedata

from leaderboard.runtime.errors import InvalidArgument

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,32}")
# Service accounts' usernames are their client ids; players cannot take that shape.
SERVICE_ACCOUNT_PREFIX = "svc_"
DISPLAY_NAME_MAX = 64
SERVICE_ACCOUNT_NAME_MIN = 3
SERVICE_ACCOUNT_NAME_MAX = 64


def normalize_username(raw: str) -> str:
    """Canonical form: NFKC, lower case (usernames are case-insensitive)."""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def check_username(raw: str, *, field: str = "username") -> str:
    username = normalize_username(raw)
    if not USERNAME_RE.fullmatch(username):
        raise InvalidArgument(field, "must be 3-32 characters of a-z, 0-9, '_', '.', '-'", reason="INVALID_USERNAME")
    if username.startswith(SERVICE_ACCOUNT_PREFIX):
        raise InvalidArgument(
            field, f"names starting with {SERVICE_ACCOUNT_PREFIX!r} are reserved", reason="INVALID_USERNAME"
        )
    return username


def _clean_text(raw: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", raw).split())
    # Control, format and unassigned characters make names that render as something else.
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


def check_display_name(raw: str, *, default: str, field: str = "display_name") -> str:
    if not raw.strip():
        return default
    name = _clean_text(raw)
    if not name:
        raise InvalidArgument(field, "must contain visible characters", reason="INVALID_DISPLAY_NAME")
    if len(name) > DISPLAY_NAME_MAX:
        raise InvalidArgument(field, f"must be at most {DISPLAY_NAME_MAX} characters", reason="INVALID_DISPLAY_NAME")
    return name


def check_service_account_name(raw: str, *, field: str = "name") -> str:
    name = _clean_text(raw)
    if not SERVICE_ACCOUNT_NAME_MIN <= len(name) <= SERVICE_ACCOUNT_NAME_MAX:
        raise InvalidArgument(
            field,
            f"must be {SERVICE_ACCOUNT_NAME_MIN}-{SERVICE_ACCOUNT_NAME_MAX} characters",
            reason="INVALID_NAME",
        )
    return name
