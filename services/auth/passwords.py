"""Password rules (NIST SP 800-63B) and argon2id hashing off the event loop.

Rules: NFKC-normalised, 8-128 characters (code points, counted after
normalisation), any Unicode, no composition rules, never truncated, and not
one of the most common passwords (the list shipped in `common_passwords.txt`),
the username, or one character repeated.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from leaderboard.runtime.errors import InvalidArgument

MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# OWASP Password Storage Cheat Sheet: argon2id configurations of equal strength
# (memory KiB, iterations), p=1. Parameters must reach at least one of them.
OWASP_MINIMUMS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))

T = TypeVar("T")


def normalize(password: str) -> str:
    """NFKC, so the same password typed on different keyboards hashes the same."""
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The blocklist, lower case (loaded once, ~30,000 entries)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_new_password(password: str, *, username: str = "", field: str = "password") -> str:
    """Validate a password being set; return its normalised form (what gets hashed)."""
    normalized = normalize(password)
    length = len(normalized)
    if length < MIN_LENGTH:
        raise InvalidArgument(field, f"must be at least {MIN_LENGTH} characters", reason="PASSWORD_TOO_SHORT")
    if length > MAX_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_LENGTH} characters", reason="PASSWORD_TOO_LONG")
    folded = normalized.casefold()
    if folded in common_passwords():
        raise InvalidArgument(
            field, "is one of the most common passwords; choose another", reason="PASSWORD_TOO_COMMON"
        )
    if username and folded == username.casefold():
        raise InvalidArgument(field, "must not be the username", reason="PASSWORD_IS_USERNAME")
    if len(set(normalized)) == 1:
        raise InvalidArgument(field, "must not be one character repeated", reason="PASSWORD_TOO_COMMON")
    return normalized


def meets_owasp_floor(memory_kib: int, time_cost: int) -> bool:
    return any(memory_kib >= m and time_cost >= t for m, t in OWASP_MINIMUMS)


class PasswordHasher:
    """argon2id in a small thread pool, at most `max_concurrent` at once.

    argon2 releases the GIL, so hashes use the other cores while the event
    loop keeps serving; the bound caps memory (max_concurrent x memory_kib)
    however many logins arrive at once: the rest wait their turn.
    """

    def __init__(self, *, time_cost: int, memory_kib: int, max_concurrent: int) -> None:
        if not meets_owasp_floor(memory_kib, time_cost):
            raise ValueError(
                f"argon2id m={memory_kib} KiB, t={time_cost} is below OWASP's minimum "
                "(e.g. m=19456, t=2); raise LEADERBOARD_ARGON2_MEMORY_KIB / _TIME_COST"
            )
        self.time_cost = time_cost
        self.memory_kib = memory_kib
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=1,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(max_concurrent)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="argon2")
        self._dummy_hash: str | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(self._hasher.hash, password))

    def _verify_sync(self, encoded: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, encoded: str | None, password: str) -> bool:
        """True when `password` matches; with no hash (unknown user) a dummy hash is
        checked instead, so the caller pays the same time either way."""
        if encoded is None:
            encoded = await self.dummy_hash()
            await self._run(functools.partial(self._verify_sync, encoded, password))
            return False
        return await self._run(functools.partial(self._verify_sync, encoded, password))

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    async def dummy_hash(self) -> str:
        """A hash with the current parameters of a random value nobody knows."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(32))
        return self._dummy_hash

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
