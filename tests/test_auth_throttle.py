"""Failed-login throttling: the back-off kicks in, is bounded, expires, cannot
be used to lock the owner out, and the per-address limit; first against real
Redis with a hand-driven clock, then over gRPC with short windows."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import cast

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2
from redis.asyncio import Redis

from leaderboard.client import Client, error_details
from leaderboard.runtime.errors import STATUS_DETAILS_KEY, ResourceExhausted
from leaderboard.runtime.redis_store import create_redis
from leaderboard.runtime.server import RunningService, start_service
from leaderboard.v1 import auth_pb2
from services.auth.throttle import LoginThrottle, ThrottleConfig
from tests.accounts import new_password, unique_name
from tests.conftest import Stack

# --- the throttle itself, real Redis, hand-driven clock ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def redis(stack: Stack) -> AsyncIterator[Redis]:
    client = create_redis(stack.settings.redis_url)
    yield client
    await client.aclose()


CONFIG = ThrottleConfig(
    pair_threshold=3,
    account_threshold=6,
    base_seconds=1.0,
    max_seconds=8.0,
    reset_seconds=60.0,
    peer_max_failures=0,  # the per-address limit has a test of its own
    peer_window_seconds=60.0,
)


def throttle(redis: Redis, clock: Clock, config: ThrottleConfig = CONFIG) -> LoginThrottle:
    return LoginThrottle(redis, f"t{uuid.uuid4().hex[:8]}:", config, clock=clock)


async def refused(attempt: Awaitable[None]) -> float:
    """The wait a refused attempt is told; fails when it is admitted."""
    with pytest.raises(ResourceExhausted) as err:
        await attempt
    assert err.value.reason == "LOGIN_THROTTLED"
    return err.value.retry_after


async def fail(t: LoginThrottle, user: str, peer: str) -> None:
    await t.acquire(user, peer)
    await t.failed(user, peer)


async def test_back_off_starts_after_threshold_doubles_and_is_capped(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock)
    for _ in range(3):  # pair_threshold failures are free
        await fail(t, "alice", "10.0.0.1")
    waits = []
    for _ in range(6):
        waits.append(await refused(t.acquire("alice", "10.0.0.1")))
        clock.now += waits[-1]
        await fail(t, "alice", "10.0.0.1")
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped at max_seconds


async def test_refused_attempts_do_not_extend_the_back_off(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock)
    for _ in range(3):
        await fail(t, "bob", "10.0.0.1")
    assert await refused(t.acquire("bob", "10.0.0.1")) == 1.0
    for _ in range(5):  # hammering changes nothing
        clock.now += 0.1
        await refused(t.acquire("bob", "10.0.0.1"))
    clock.now += 0.6
    await t.acquire("bob", "10.0.0.1")  # over 1 s after the last failure: admitted
    await t.succeeded("bob", "10.0.0.1")
    await t.acquire("bob", "10.0.0.1")  # success forgave everything
    await t.acquire("bob", "10.0.0.1")


async def test_a_guesser_elsewhere_does_not_lock_the_owner_out(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock)
    for _ in range(3):  # one address guessing slows only itself
        await fail(t, "carol", "203.0.113.9")
    await refused(t.acquire("carol", "203.0.113.9"))
    await t.acquire("carol", "198.51.100.7")  # the owner, elsewhere
    await t.succeeded("carol", "198.51.100.7")

    # Guessing spread over many addresses trips the account-wide back-off,
    # which holds the owner back too, but never longer than max_seconds.
    for i in range(12):
        clock.now += 10
        await fail(t, "carol", f"192.0.2.{i}")
    wait = await refused(t.acquire("carol", "198.51.100.7"))
    assert 0 < wait <= CONFIG.max_seconds
    clock.now += wait
    await t.acquire("carol", "198.51.100.7")  # the right password gets its turn
    await t.succeeded("carol", "198.51.100.7")


async def test_in_back_off_concurrent_attempts_get_one_slot(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock)
    for _ in range(3):
        await fail(t, "dave", "10.0.0.1")
    clock.now += 1.0
    results = await asyncio.gather(*(t.acquire("dave", "10.0.0.1") for _ in range(8)), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ResourceExhausted) for r in results if r is not None)


async def test_counts_are_forgotten_after_quiet_time(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock)
    for _ in range(4):
        clock.now += 30
        await fail(t, "erin", "10.0.0.1")
    await refused(t.acquire("erin", "10.0.0.1"))
    clock.now += CONFIG.reset_seconds + 1
    for _ in range(3):  # a fresh allowance
        await fail(t, "erin", "10.0.0.1")


async def test_per_address_limit_over_all_accounts(redis: Redis) -> None:
    clock = Clock()
    t = throttle(redis, clock, dataclasses.replace(CONFIG, peer_max_failures=10))
    for i in range(10):  # spraying: one guess on each of many accounts
        await fail(t, f"user{i}", "10.9.9.9")
    clock.now += 15
    wait = await refused(t.acquire("someone-else", "10.9.9.9"))
    assert wait == pytest.approx(45.0)
    await t.acquire("someone-else", "10.9.9.10")  # other addresses are not affected
    clock.now += wait
    await t.acquire("someone-else", "10.9.9.9")  # the next window


# --- over gRPC, with an AuthService of short windows ----------------------------------------------


@pytest_asyncio.fixture
async def strict_auth(stack: Stack) -> AsyncIterator[Client]:
    """A second AuthService on the same database, with windows short enough to wait out."""
    settings = dataclasses.replace(
        stack.settings,
        redis_key_prefix=f"t{uuid.uuid4().hex[:8]}:",
        login_max_failures=2,
        login_account_max_failures=50,
        login_backoff_base_seconds=0.2,
        login_backoff_max_seconds=0.4,
        login_peer_max_failures=12,
    )
    running: RunningService = await start_service("auth", settings, port=0)
    client = Client({"auth": f"127.0.0.1:{running.port}"})
    yield client
    await client.close()
    await running.stop(grace=0.2)


def retry_delay(err: grpc.aio.AioRpcError) -> float:
    trailing = cast(Sequence[tuple[str, str | bytes]], err.trailing_metadata() or ())
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return float(info.retry_delay.ToMilliseconds()) / 1000
    raise AssertionError("no RetryInfo")


async def login_error(client: Client, username: str, password: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    return err.value


async def test_throttling_kicks_in_and_expires(stack: Stack, strict_auth: Client) -> None:
    username, password = unique_name("thr"), new_password()
    await stack.client.auth.Register(auth_pb2.RegisterRequest(username=username, password=password))
    for _ in range(2):
        err = await login_error(strict_auth, username, "wrong-password")
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    err = await login_error(strict_auth, username, password)  # even the right one waits
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_details(err)[0] == "LOGIN_THROTTLED"
    delay = retry_delay(err)
    assert 0 < delay <= 0.2

    await asyncio.sleep(delay + 0.05)
    reply = await strict_auth.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    assert reply.user.username == username
    # Success forgave the failures: two more are allowed before the back-off again.
    for _ in range(2):
        assert (await login_error(strict_auth, username, "wrong")).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_usernames_are_throttled_alike(stack: Stack, strict_auth: Client) -> None:
    nobody = unique_name("ghost")
    codes = [(await login_error(strict_auth, nobody, "whatever-pass")).code() for _ in range(3)]
    assert codes == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]


async def test_back_off_is_bounded_for_the_owner(stack: Stack, strict_auth: Client) -> None:
    username, password = unique_name("bound"), new_password()
    await stack.client.auth.Register(auth_pb2.RegisterRequest(username=username, password=password))
    waits: list[float] = []
    for _ in range(15):  # an attacker guessing as fast as allowed
        err = await login_error(strict_auth, username, "guess-" + uuid.uuid4().hex)
        if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            waits.append(retry_delay(err))
            await asyncio.sleep(retry_delay(err))
        if len(waits) >= 3:
            break
    assert waits and max(waits) <= 0.4
    await asyncio.sleep(0.45)
    reply = await strict_auth.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    assert reply.user.username == username


async def test_per_address_limit_over_grpc(strict_auth: Client) -> None:
    async def attempt(username: str) -> grpc.StatusCode:
        return (await login_error(strict_auth, username, "spray-password")).code()

    codes = [await attempt(unique_name("spray")) for _ in range(13)]
    assert codes[:12] == [grpc.StatusCode.UNAUTHENTICATED] * 12
    assert codes[12] == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_registrations_per_address_are_limited_when_configured(stack: Stack) -> None:
    settings = dataclasses.replace(
        stack.settings, redis_key_prefix=f"t{uuid.uuid4().hex[:8]}:", register_peer_max_per_hour=2
    )
    running: RunningService = await start_service("auth", settings, port=0)
    client = Client({"auth": f"127.0.0.1:{running.port}"})
    try:
        for _ in range(2):
            await client.auth.Register(auth_pb2.RegisterRequest(username=unique_name("reg"), password=new_password()))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.auth.Register(auth_pb2.RegisterRequest(username=unique_name("reg"), password=new_password()))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_details(err.value)[0] == "REGISTER_THROTTLED"
        assert 3000 < retry_delay(err.value) <= 3600
        # Logins are not registrations: they still go through.
        username, password = unique_name("reg"), new_password()
        await stack.client.auth.Register(auth_pb2.RegisterRequest(username=username, password=password))
        await client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
    finally:
        await client.close()
        await running.stop(grace=0.2)
