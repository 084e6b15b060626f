"""Failed-login throttling in Redis (shared by every auth process).

Three counters:

- per account and client address: after `pair_threshold` failures each
  further attempt waits base x 2^k seconds, capped at `max_seconds`. A guesser
  on one address slows itself, not the owner elsewhere.
- per account over all addresses, with a higher threshold: the same back-off
  against guessing spread over many addresses.
- per client address over all accounts: at most `peer_max_failures` failed
  or refused logins in a minute from its first failure (password spraying).

Failures are counted when a password check fails and forgotten when one
succeeds. Once an account is in back-off, an admitted attempt holds the slot
for the current delay, so concurrent guesses cannot slip through together.
Attempts refused during a back-off are cheap (no hash) and do not extend it,
so the back-off stays bounded: after at most `max_seconds` the right password
gets in again, and an attacker's stream of refused attempts only trips their
own address's limit. Counts are forgotten after `reset_seconds` without
attempts. Unknown usernames are throttled exactly like real ones, so
throttling reveals nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from leaderboard.runtime.errors import ResourceExhausted
from services.auth.names import USERNAME_RE

THROTTLED_MESSAGE = "too many failed logins; retry later"

# Both scripts: KEYS are one hash per scope {n: failures, next: ms before which
# no attempt is admitted, last: ms of the last failure or admitted attempt in
# back-off}; ARGV: now_ms, base_ms, cap_ms, reset_ms, then each scope's threshold.
_LOAD = """
local now = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local reset = tonumber(ARGV[4])
local function read_state(key)
  local v = redis.call('HMGET', key, 'n', 'next', 'last')
  if now - (tonumber(v[3]) or 0) > reset then return 0, 0 end
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end
local function delay(n, threshold)
  return math.floor(math.min(base * 2 ^ math.min(n - threshold, 40), cap))
end
"""

# Returns 0 (go ahead) or the ms to wait.
_ACQUIRE = (
    _LOAD
    + """
local wait = 0
for i, key in ipairs(KEYS) do
  local n, nxt = read_state(key)
  if nxt - now > wait then wait = nxt - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local n, nxt = read_state(key)
  local threshold = tonumber(ARGV[4 + i])
  if n >= threshold then
    redis.call('HSET', key, 'n', n, 'next', now + delay(n, threshold), 'last', now)
    redis.call('PEXPIRE', key, reset + cap)
  end
end
return 0
"""
)

_FAIL = (
    _LOAD
    + """
for i, key in ipairs(KEYS) do
  local n = read_state(key) + 1
  local threshold = tonumber(ARGV[4 + i])
  local nxt = 0
  if n >= threshold then nxt = now + delay(n, threshold) end
  redis.call('HSET', key, 'n', n, 'next', nxt, 'last', now)
  redis.call('PEXPIRE', key, reset + cap)
end
return 0
"""
)

# Per-address window, opened by its first use: KEYS[1] = hash {start, count};
# ARGV: now_ms, window_ms, limit, mode: '0' check, '1' count (a failure), '2' take
# (check, and count if admitted). Returns the ms to wait, 0 when admitted.
_PEER = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local mode = ARGV[4]
local v = redis.call('HMGET', KEYS[1], 'start', 'count')
local start = tonumber(v[1]) or 0
local count = tonumber(v[2]) or 0
if now - start >= window then
  start = now
  count = 0
end
if mode ~= '1' and count >= tonumber(ARGV[3]) then return start + window - now end
if mode ~= '0' then
  redis.call('HSET', KEYS[1], 'start', start, 'count', count + 1)
  redis.call('PEXPIRE', KEYS[1], window)
end
return 0
"""


@dataclass(frozen=True)
class ThrottleConfig:
    pair_threshold: int = 5
    account_threshold: int = 20
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    reset_seconds: float = 900.0
    peer_max_failures: int = 100  # 0: no per-address limit
    peer_window_seconds: float = 60.0


def throttle_subject(username: str) -> str:
    """Key-safe name of the account being tried (it need not exist)."""
    if USERNAME_RE.fullmatch(username):
        return username
    return "h" + hashlib.sha256(username.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        config: ThrottleConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix + "auth:login:"
        self._config = config
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._fail = redis.register_script(_FAIL)
        self._peer = redis.register_script(_PEER)

    def _scope_keys(self, subject: str, peer: str) -> list[str]:
        # One hash tag per account: both keys of the script share a Redis Cluster slot.
        return [f"{self._prefix}{{{subject}}}:peer:{peer}", f"{self._prefix}{{{subject}}}:all"]

    def _args(self, now: float) -> list[int]:
        config = self._config
        return [
            int(now * 1000),
            int(config.base_seconds * 1000),
            int(config.max_seconds * 1000),
            int(config.reset_seconds * 1000),
            config.pair_threshold,
            config.account_threshold,
        ]

    async def _peer_window(self, peer: str, now: float, *, count: bool) -> int:
        """Count a failure from `peer` (count=True) or return the ms it must wait."""
        config = self._config
        if not config.peer_max_failures:
            return 0
        args = [int(now * 1000), int(config.peer_window_seconds * 1000), config.peer_max_failures, int(count)]
        return int(await self._peer(keys=[f"{self._prefix}peer:{peer}"], args=args))

    async def acquire(self, subject: str, peer: str) -> None:
        """Raise RESOURCE_EXHAUSTED (with the wait) when this attempt must not be tried now."""
        now = self._clock()
        wait_ms = await self._peer_window(peer, now, count=False)
        if wait_ms > 0:
            raise ResourceExhausted(THROTTLED_MESSAGE, retry_after=wait_ms / 1000, reason="LOGIN_THROTTLED")
        wait_ms = int(await self._acquire(keys=self._scope_keys(subject, peer), args=self._args(now)))
        if wait_ms > 0:
            await self._peer_window(peer, now, count=True)
            raise ResourceExhausted(THROTTLED_MESSAGE, retry_after=wait_ms / 1000, reason="LOGIN_THROTTLED")

    async def failed(self, subject: str, peer: str) -> None:
        now = self._clock()
        await self._fail(keys=self._scope_keys(subject, peer), args=self._args(now))
        await self._peer_window(peer, now, count=True)

    async def succeeded(self, subject: str, peer: str) -> None:
        await self._redis.delete(*self._scope_keys(subject, peer))


REGISTER_WINDOW_SECONDS = 3600.0


class RegistrationLimit:
    """At most `per_hour` registrations per client address an hour. Each costs a
    password hash, and hashes share a small pool with logins: a flood of
    registrations from one address would queue in front of everyone's logins."""

    def __init__(self, redis: Redis, prefix: str, per_hour: int, *, clock: Callable[[], float] = time.time) -> None:
        self._window = redis.register_script(_PEER)
        self._prefix = prefix + "auth:register:peer:"
        self._per_hour = per_hour
        self._clock = clock

    async def admit(self, peer: str) -> None:
        """Count one registration from `peer`, or raise RESOURCE_EXHAUSTED with the wait."""
        args = [int(self._clock() * 1000), int(REGISTER_WINDOW_SECONDS * 1000), self._per_hour, 2]
        wait_ms = int(await self._window(keys=[self._prefix + peer], args=args))
        if wait_ms > 0:
            raise ResourceExhausted(
                "too many registrations from this address; retry later",
                retry_after=wait_ms / 1000,
                reason="REGISTER_THROTTLED",
            )
