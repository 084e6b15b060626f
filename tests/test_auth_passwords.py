"""Password rules and the argon2id hasher, without servers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from leaderboard.runtime.errors import InvalidArgument
from services.auth.passwords import PasswordHasher, check_new_password, common_passwords

FLOOR = {"time_cost": 2, "memory_kib": 19456}


def test_blocklist_ships_at_least_the_10000_most_common_passwords() -> None:
    listed = common_passwords()
    assert len(listed) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "trustno1"} <= listed


def test_rules_count_code_points_after_nfkc() -> None:
    assert check_new_password("ﬁﬁﬁﬁ") == "fifififi"  # 4 ligatures are 8 characters once normalised
    with pytest.raises(InvalidArgument):
        check_new_password("éüéüéüé")
    assert len(check_new_password("éü" * 64)) == 128  # 256 bytes of UTF-8, still 128 characters
    with pytest.raises(InvalidArgument) as err:
        check_new_password("éü" * 64 + "x")
    assert err.value.reason == "PASSWORD_TOO_LONG"


def test_parameters_below_owasp_floor_are_refused() -> None:
    with pytest.raises(ValueError, match="OWASP"):
        PasswordHasher(time_cost=1, memory_kib=19456, max_concurrent=1)
    with pytest.raises(ValueError, match="OWASP"):
        PasswordHasher(time_cost=2, memory_kib=8192, max_concurrent=1)
    PasswordHasher(time_cost=1, memory_kib=47104, max_concurrent=1).close()  # OWASP's m=46 MiB, t=1


class CountingHasher(PasswordHasher):
    """Records how many hashes run at once (in the worker threads)."""

    def __init__(self, **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.running = 0
        self.peak = 0
        self.threads: set[str] = set()
        self._count_lock = threading.Lock()

    def _verify_sync(self, encoded: str, password: str) -> bool:
        with self._count_lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return super()._verify_sync(encoded, password)
        finally:
            with self._count_lock:
                self.running -= 1


async def test_hashing_is_bounded_and_leaves_the_event_loop_free() -> None:
    hasher = CountingHasher(**FLOOR, max_concurrent=2)
    try:
        encoded = await hasher.hash("correct horse battery")
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.001)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        started = time.perf_counter()
        results = await asyncio.gather(*(hasher.verify(encoded, "correct horse battery") for _ in range(16)))
        elapsed = time.perf_counter() - started
        stop.set()
        await ticking
        assert all(results)
        assert hasher.peak <= 2  # 16 requests, never more than 2 hashes (x 19 MiB) at once
        assert threading.current_thread().name not in hasher.threads
        # The loop kept ticking while the hashes ran; had they run on it, the
        # ticker could only have slipped in between them (at most 17 ticks).
        assert ticks > 17, (ticks, elapsed)
    finally:
        hasher.close()


async def test_verify_without_a_hash_pays_for_a_dummy_one() -> None:
    hasher = PasswordHasher(**FLOOR, max_concurrent=1)
    try:
        encoded = await hasher.hash("correct horse battery")
        await hasher.dummy_hash()

        async def timed(stored: str | None) -> float:
            started = time.perf_counter()
            assert await hasher.verify(stored, "wrong horse battery") is False
            return time.perf_counter() - started

        real = min([await timed(encoded) for _ in range(3)])
        dummy = min([await timed(None) for _ in range(3)])
        assert dummy > real / 3, (dummy, real)
        assert not hasher.needs_rehash(encoded)
        assert PasswordHasher(time_cost=3, memory_kib=19456, max_concurrent=1).needs_rehash(encoded)
    finally:
        hasher.close()
