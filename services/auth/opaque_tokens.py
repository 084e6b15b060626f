"""Opaque high-entropy secrets (refresh tokens, service-account secrets) and their digests.

A 256-bit random value cannot be guessed, so a plain SHA-256 digest is a safe
way to store it (a slow hash only protects low-entropy secrets like passwords)
and lets us look it up by digest in one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_secret() -> str:
    """43 URL-safe characters carrying 256 random bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()
