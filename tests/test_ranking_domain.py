"""Ranking domain and Redis store, against the session's real Redis and PostgreSQL.

Each test gets its own Redis key prefix (so its own `global`) and an injected
clock; leaderboards are created in the shared catalog with unique ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from leaderboard.runtime.config import Settings
from leaderboard.runtime.db import create_engine, session_factory
from leaderboard.runtime.errors import InvalidArgument, NotFound
from leaderboard.runtime.redis_store import create_redis
from services.ranking.catalog import GLOBAL_ID, Board, CatalogCache, Policy, SortOrder
from services.ranking.catalog_store import CatalogStore
from services.ranking.rank_store import RankStore, user_key
from services.ranking.ranking import Entry, Ranking, ScoreEvent
from services.ranking.windows import Window

MAX = 2**53
DESC, ASC = SortOrder.DESCENDING, SortOrder.ASCENDING
# Injected times lie in the future: Redis expires keys by its own clock.
T0 = int(datetime(2037, 11, 25, 12, tzinfo=UTC).timestamp() * 1000)  # a Wednesday


def ms(year: int, month: int, day: int, *hms: int) -> int:
    hour, minute, second = (*hms, 0, 0, 0)[:3]
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


@dataclass
class Harness:
    ranking: Ranking
    store: RankStore
    catalog: CatalogCache
    catalog_store: CatalogStore
    redis: Redis
    prefix: str
    clock: Clock
    history: dict[str, list[ScoreEvent]] = field(default_factory=dict)

    async def board(
        self,
        *,
        order: SortOrder = DESC,
        policy: Policy = Policy.BEST,
        windows: Sequence[Window] = (),
        weight: float = 0.0,
        retention: int = 0,
    ) -> Board:
        board = await self.catalog_store.create(
            Board(
                id=f"t-{uuid.uuid4().hex[:12]}",
                game_id="g",
                display_name="test",
                sort_order=order,
                policy=policy,
                min_score=None,
                max_score=None,
                authoritative=False,
                windows=tuple(windows),
                global_weight=weight,
                retention_periods=retention,
            )
        )
        self.catalog.put(board)
        await self.ranking.board_created(board)
        return board

    async def reweigh(self, board: Board, weight: float) -> Board:
        updated = await self.catalog_store.update(dataclasses.replace(board, global_weight=weight))
        assert updated is not None
        self.catalog.put(updated)
        await self.ranking.board_updated(board, updated)
        return updated

    async def apply(self, *events: ScoreEvent) -> list[Any]:
        results = await self.ranking.apply(events)
        for ev, result in zip(events, results, strict=True):
            if not result.duplicate:
                self.history.setdefault(ev.leaderboard_id, []).append(ev)
        return results

    async def source(self, board_id: str) -> AsyncIterator[Sequence[ScoreEvent]]:
        events = self.history.get(board_id, [])
        for i in range(0, len(events), 3):
            yield events[i : i + 3]

    async def top_all(self, board: Board, window: Window = Window.ALL_TIME, **kw: Any) -> list[Entry]:
        page = await self.ranking.top(board.id, window, 1000, **kw)
        assert not page.next_token
        return page.entries

    async def score(self, board: Board, user: str, window: Window = Window.ALL_TIME) -> int:
        entry, _ = await self.ranking.user_rank(board.id, window, user)
        return entry.score


async def pexpiretime(redis: Redis, key: str) -> int:
    when: int = await redis.execute_command("PEXPIRETIME", key)  # type: ignore[no-untyped-call]
    return when


def user() -> str:
    return str(uuid.uuid4())


def ev(board: Board | str, user_id: str, score: int, t: int = T0, *, name: str = "", event_id: str = "") -> ScoreEvent:
    board_id = board if isinstance(board, str) else board.id
    return ScoreEvent(event_id or str(uuid.uuid4()), board_id, user_id, score, t, name or f"n-{user_id[:4]}")


@pytest.fixture(scope="module")
def engine_and_redis(settings: Settings) -> Iterator[tuple[AsyncEngine, Redis]]:
    yield create_engine(settings.postgres_url, pool_size=4), create_redis(settings.redis_url)


@pytest_asyncio.fixture
async def h(settings: Settings, engine_and_redis: tuple[AsyncEngine, Redis]) -> AsyncIterator[Harness]:
    engine, redis = engine_and_redis
    prefix = f"{settings.redis_key_prefix}d{uuid.uuid4().hex[:8]}:"
    catalog_store = CatalogStore(session_factory(engine))
    catalog = CatalogCache(catalog_store.get, ttl_seconds=60)
    store = RankStore(redis, prefix, page_ttl_ms=600_000)
    clock = Clock(T0 + 1000)
    harness = Harness(
        Ranking(
            catalog,
            catalog_store,
            store,
            default_retention=2,
            dedup_window_seconds=86400,
            clock=clock,
        ),
        store,
        catalog,
        catalog_store,
        redis,
        prefix,
        clock,
    )
    harness.ranking._history = harness.source
    await store.load_scripts()
    await store.init_board(GLOBAL_ID)
    yield harness
    await harness.ranking.close()
    store.close()


async def test_every_key_starts_with_the_prefix_and_shares_the_boards_hash_tag(h: Harness) -> None:
    board = await h.board(windows=[Window.DAILY], weight=1)
    await h.apply(ev(board, user(), 5))
    keys = [k.decode() async for k in h.redis.scan_iter(match=h.prefix + "*")]
    assert keys
    for key in keys:
        assert key.startswith(h.prefix)
        tag = key[key.index("{") + 1 : key.index("}")]
        assert tag in (f"lb:{board.id}", f"lb:{GLOBAL_ID}")


# --- policies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "order", "scores", "standing", "improved"),
    [
        (Policy.BEST, DESC, [10, 5, 20, 20], 20, [True, False, True, False]),
        (Policy.BEST, ASC, [10, 5, 20, 5], 5, [True, True, False, False]),
        (Policy.LATEST, DESC, [10, 5, 20, 7], 7, [True, False, True, False]),
        (Policy.LATEST, ASC, [10, 5, 20, 7], 7, [True, True, False, True]),
        (Policy.SUM, DESC, [10, 5, -20, 0], -5, [True, True, False, False]),
        (Policy.SUM, ASC, [10, 5, -20, 0], -5, [True, False, True, False]),
    ],
)
async def test_update_policies_in_both_orders(  # noqa: PLR0917 - parametrized
    h: Harness, policy: Policy, order: SortOrder, scores: list[int], standing: int, improved: list[bool]
) -> None:
    board = await h.board(policy=policy, order=order)
    me = user()
    seen = []
    for i, score in enumerate(scores):
        (result,) = await h.apply(ev(board, me, score, T0 + i))
        seen.append(result.improved)
    assert seen == improved
    assert result.entry is not None and result.entry.score == standing
    assert await h.score(board, me) == standing


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_order_ranks_the_right_end_first(h: Harness, order: SortOrder) -> None:
    board = await h.board(order=order)
    users = [user() for _ in range(5)]
    await h.apply(*(ev(board, u, s) for u, s in zip(users, [30, -10, 50, 0, 20], strict=True)))
    scores = [e.score for e in await h.top_all(board)]
    assert scores == sorted(scores, reverse=order is DESC)
    assert [e.rank for e in await h.top_all(board)] == [1, 2, 3, 4, 5]


async def test_sum_saturates_at_2_pow_53(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM)
    me = user()
    await h.apply(ev(board, me, MAX, T0), ev(board, me, MAX, T0 + 1))
    assert await h.score(board, me) == MAX


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_events_reach_the_script_intact_at_the_edges_of_each_field(h: Harness, order: SortOrder) -> None:
    # Events travel to apply.lua packed into one string (rank_store.encode_events): the
    # longest names and event ids, multi-byte text and both score bounds must come through.
    board = await h.board(order=order, policy=Policy.LATEST, windows=[Window.DAILY, Window.MONTHLY])
    low, high, named = user(), user(), user()
    name = "名" * 127 + "🏆"  # 128 characters, 384 bytes
    event_id = "é" * 128
    results = await h.apply(
        ev(board, low, -MAX, T0),
        ev(board, high, MAX, T0 + 1),
        ev(board, named, 0, T0 + 2, name=name, event_id=event_id),
    )
    assert [r.entry.score if r.entry else None for r in results] == [-MAX, MAX, 0]
    assert [r.entry.rank if r.entry else None for r in results] == (
        [1, 1, 2] if order is DESC else [1, 2, 2]
    )  # as each was applied
    assert results[2].entry is not None and results[2].entry.display_name == name
    assert results[1].entry is not None and results[1].entry.achieved_ms == T0 + 1
    (again,) = await h.ranking.apply([ev(board, named, 5, T0 + 3, name=name, event_id=event_id)])
    assert again.duplicate  # the long non-UUID id was kept as sent
    for window in (Window.ALL_TIME, Window.DAILY, Window.MONTHLY):
        assert [e.score for e in await h.top_all(board, window)] == (
            [MAX, 0, -MAX] if order is DESC else [-MAX, 0, MAX]
        )
    assert (await h.ranking.user_rank(board.id, Window.ALL_TIME, named))[0].display_name == name


# --- ties ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_ties_share_a_rank_and_the_first_achiever_is_listed_first(h: Harness, order: SortOrder) -> None:
    board = await h.board(order=order)
    a, b, c, d = user(), user(), user(), user()
    better = 200 if order is DESC else 10
    # b reached 100 one millisecond before a; applied in the other order on purpose.
    await h.apply(ev(board, a, 100, T0 + 5), ev(board, b, 100, T0 + 4), ev(board, c, better, T0 + 9))
    await h.apply(ev(board, d, 100, T0 + 4))  # same millisecond as b: both tie on time too
    entries = await h.top_all(board)
    assert [e.user_id for e in entries][:2] == [c, sorted([b, d], key=user_key)[0]]
    assert [e.user_id for e in entries][3] == a
    assert [e.rank for e in entries] == [1, 2, 2, 2]
    entry, total = await h.ranking.user_rank(board.id, Window.ALL_TIME, a)
    assert (entry.rank, total) == (2, 4)
    assert entry.percentile == 0.0
    top, _ = await h.ranking.user_rank(board.id, Window.ALL_TIME, c)
    assert top.percentile == 75.0  # three of four rank strictly below


async def test_best_keeps_the_first_time_it_reached_its_score(h: Harness) -> None:
    board = await h.board()
    a, b = user(), user()
    await h.apply(ev(board, a, 100, T0), ev(board, b, 100, T0 + 1), ev(board, a, 100, T0 + 2))
    assert [e.user_id for e in await h.top_all(board)] == [a, b]
    assert (await h.ranking.user_rank(board.id, Window.ALL_TIME, a))[0].achieved_ms == T0


@pytest.mark.parametrize("order", [DESC, ASC])
async def test_extreme_scores_are_exact_and_beyond_is_invalid(h: Harness, order: SortOrder) -> None:
    board = await h.board(order=order)
    users = {s: user() for s in (MAX, MAX - 1, -MAX, -MAX + 1, 0)}
    await h.apply(*(ev(board, u, s, T0 + i) for i, (s, u) in enumerate(users.items())))
    entries = await h.top_all(board)
    expected = sorted(users, reverse=order is DESC)
    assert [e.score for e in entries] == expected
    assert [e.user_id for e in entries] == [users[s] for s in expected]
    assert [e.rank for e in entries] == [1, 2, 3, 4, 5]
    for score in (MAX + 1, -MAX - 1):
        with pytest.raises(InvalidArgument) as err:
            await h.apply(ev(board, user(), score))
        assert err.value.field == "events[0].score"


async def test_bad_events_name_their_field(h: Harness) -> None:
    board = await h.board()
    cases = [
        (ScoreEvent("", board.id, user(), 1, T0), "events[0].event_id"),
        (ScoreEvent("e", board.id, "not-a-uuid", 1, T0), "events[0].user_id"),
        # 36 characters with the canonical hyphens and two more: no 15-byte key.
        (ScoreEvent("e", board.id, "01234567-0123-0123-0123-01234--789ab", 1, T0), "events[0].user_id"),
        (ScoreEvent("e", board.id, user(), 1, 0), "events[0].achieved_at"),
        (ScoreEvent("e", "Bad Id", user(), 1, T0), "events[0].leaderboard_id"),
        (ScoreEvent("e", GLOBAL_ID, user(), 1, T0), "events[0].leaderboard_id"),
    ]
    for event, name in cases:
        with pytest.raises(InvalidArgument) as err:
            await h.ranking.apply([event])
        assert err.value.field == name
    with pytest.raises(NotFound) as missing:
        await h.ranking.apply([ev("no-such-board", user(), 1)])
    assert missing.value.reason == "LEADERBOARD_NOT_FOUND"


async def test_a_board_missing_in_redis_is_recreated_and_a_deleted_one_refused(h: Harness) -> None:
    board = await h.board()
    me = user()
    await h.store.delete_board(board.id)  # Redis lost it
    (result,) = await h.apply(ev(board, me, 9))
    assert result.entry is not None and result.entry.rank == 1
    # Deleted by another replica: this one's cache still has it, Redis and PostgreSQL do not.
    deleted = await h.catalog_store.delete(board.id)
    assert deleted is not None
    await h.store.delete_board(board.id)
    with pytest.raises(NotFound):
        await h.ranking.apply([ev(board, me, 10)])
    assert await h.catalog.find(board.id) is None


async def test_a_board_created_elsewhere_is_found_despite_a_cached_miss(h: Harness) -> None:
    board_id = f"t-{uuid.uuid4().hex[:12]}"
    assert await h.catalog.find(board_id) is None  # cached as missing
    template = await h.board()  # "another replica" creates the board, bypassing this cache
    created = await h.catalog_store.create(dataclasses.replace(template, id=board_id))
    await h.ranking.board_created(created)
    (result,) = await h.ranking.apply([ev(board_id, user(), 1)])
    assert result.entry is not None


# --- idempotency ---------------------------------------------------------------------------------------


async def test_reapplying_the_same_event_ids_changes_nothing(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM, windows=[Window.DAILY, Window.WEEKLY], weight=2)
    a, b = user(), user()
    batch = [ev(board, a, 10, T0), ev(board, b, 7, T0 + 1), ev(board, a, 5, T0 + 2)]
    first = await h.ranking.apply(batch)
    assert [r.duplicate for r in first] == [False, False, False]
    again = await h.ranking.apply([*batch, ev(board, b, 1, T0 + 3)])
    assert [r.duplicate for r in again] == [True, True, True, False]
    assert again[0].entry is not None and again[0].entry.score == 15  # the standing, unchanged
    assert await h.score(board, a) == 15
    assert await h.score(board, a, Window.DAILY) == 15
    assert await h.score(board, b) == 8
    g = await h.catalog.get(GLOBAL_ID)
    assert await h.score(g, a) == 30
    assert await h.score(g, b) == 16
    # A duplicate inside one batch counts once too.
    (_, dup) = await h.ranking.apply([ev(board, a, 1, T0 + 9, event_id="x-1"), ev(board, a, 1, T0 + 9, event_id="x-1")])
    assert dup.duplicate and await h.score(board, a) == 16


async def test_best_boards_are_idempotent_without_keeping_event_ids(h: Harness) -> None:
    board = await h.board(policy=Policy.BEST, windows=[Window.DAILY], weight=1)
    a, b = user(), user()
    batch = [ev(board, a, 10, T0), ev(board, b, 30, T0 + 1), ev(board, a, 20, T0 + 2), ev(board, a, 5, T0 + 3)]
    await h.ranking.apply(batch)
    g = await h.catalog.get(GLOBAL_ID)
    state = [await h.top_all(board), await h.top_all(board, Window.DAILY), await h.top_all(g)]
    for replay in (batch, batch[::-1], [batch[2], batch[0]]):
        results = await h.ranking.apply(replay)
        assert not any(r.improved for r in results)
        assert [await h.top_all(board), await h.top_all(board, Window.DAILY), await h.top_all(g)] == state
    assert not [k async for k in h.redis.scan_iter(match=f"{h.store.base(board.id)}:e:*")]


# --- windows -----------------------------------------------------------------------------------------------


async def test_windows_roll_over_at_utc_boundaries(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM, windows=[Window.DAILY, Window.WEEKLY, Window.MONTHLY], retention=3)
    me = user()
    sunday_end = ms(2037, 11, 29, 23, 59, 59) + 999  # last ms of Sunday 29 Nov (ISO week 48)
    monday = ms(2037, 11, 30)  # first ms of Monday 30 Nov (week 49), still November
    december = ms(2037, 12, 1)
    await h.apply(ev(board, me, 1, sunday_end), ev(board, me, 10, monday), ev(board, me, 100, december))
    h.clock.now_ms = december + 3600_000
    daily = {t: (await h.ranking.user_rank(board.id, Window.DAILY, me, t))[0].score for t in (sunday_end, monday)}
    assert daily == {sunday_end: 1, monday: 10}
    assert await h.score(board, me, Window.DAILY) == 100  # today = 1 Dec
    weekly = {t: (await h.ranking.user_rank(board.id, Window.WEEKLY, me, t))[0].score for t in (sunday_end, december)}
    assert weekly == {sunday_end: 1, december: 110}
    monthly = {t: (await h.ranking.user_rank(board.id, Window.MONTHLY, me, t))[0].score for t in (monday, december)}
    assert monthly == {monday: 11, december: 100}
    assert await h.score(board, me) == 111
    # The clock moves on: retention 3 keeps the current day and three before it.
    h.clock.now_ms = ms(2037, 12, 3, 12)
    assert (await h.ranking.user_rank(board.id, Window.DAILY, me, monday))[0].score == 10
    with pytest.raises(NotFound) as gone:
        await h.ranking.user_rank(board.id, Window.DAILY, me, sunday_end)
    assert gone.value.reason == "PERIOD_EXPIRED"
    with pytest.raises(InvalidArgument) as future:
        await h.ranking.user_rank(board.id, Window.DAILY, me, ms(2037, 12, 4))
    assert future.value.field == "period_time"
    with pytest.raises(NotFound):  # nothing submitted today
        await h.ranking.user_rank(board.id, Window.DAILY, me)
    with pytest.raises(InvalidArgument):
        await h.ranking.user_rank((await h.board()).id, Window.DAILY, me)  # a board without windows


async def test_windowed_keys_expire_after_retention(h: Harness) -> None:
    board = await h.board(windows=[Window.DAILY], retention=2)
    await h.apply(ev(board, user(), 1, T0))
    expected = ms(2037, 11, 28)  # end of 25 Nov + 2 more days
    base = h.store.base(board.id)
    for kind in ("r", "s"):
        assert await pexpiretime(h.redis, f"{base}:{kind}:d20371125") == expected
    assert await pexpiretime(h.redis, f"{base}:r:a") == -1
    # An event whose day is already past retention updates all-time only.
    await h.apply(ev(board, user(), 1, ms(2037, 11, 20)))
    assert not await h.redis.exists(f"{base}:r:d20371120")


# --- reads ------------------------------------------------------------------------------------------------------


async def test_around_and_for_users(h: Harness) -> None:
    board = await h.board()
    users = [user() for _ in range(10)]
    scores = [100, 90, 90, 80, 70, 60, 60, 60, 50, 40]
    await h.apply(*(ev(board, u, s, T0 + i) for i, (u, s) in enumerate(zip(users, scores, strict=True))))
    around, total = await h.ranking.around(board.id, Window.ALL_TIME, users[6], before=3, after=2)
    assert total == 10
    assert [e.user_id for e in around] == users[3:9]
    assert [e.rank for e in around] == [4, 5, 6, 6, 6, 9]
    top_edge, _ = await h.ranking.around(board.id, Window.ALL_TIME, users[1], before=5, after=1)
    assert [e.rank for e in top_edge] == [1, 2, 2]
    # Ranks and percentiles of listed entries agree with each player's own read.
    listed = [*around, *top_edge, *(await h.ranking.top(board.id, Window.ALL_TIME, 4)).entries]
    for e in listed:
        own, _ = await h.ranking.user_rank(board.id, Window.ALL_TIME, e.user_id)
        assert (e.rank, e.percentile, e.score) == (own.rank, own.percentile, own.score)
    friends, _ = await h.ranking.for_users(board.id, Window.ALL_TIME, [users[9], users[2], user(), users[0]])
    assert [(e.user_id, e.rank) for e in friends] == [(users[0], 1), (users[2], 2), (users[9], 10)]
    assert friends[0].display_name == f"n-{users[0][:4]}"
    with pytest.raises(InvalidArgument):
        await h.ranking.for_users(board.id, Window.ALL_TIME, [user() for _ in range(101)])
    with pytest.raises(NotFound) as err:
        await h.ranking.user_rank(board.id, Window.ALL_TIME, user())
    assert err.value.reason == "USER_NOT_RANKED"


async def test_display_names_follow_the_latest_event(h: Harness) -> None:
    board = await h.board()
    me = user()
    await h.apply(ev(board, me, 1, name="Ada"), ev(board, me, 0, T0 + 1, name="Ada L."))
    assert (await h.top_all(board))[0].display_name == "Ada L."


# --- pagination -------------------------------------------------------------------------------------------------


async def _page_through(h: Harness, board: Board, size: int, between: Any = None) -> list[Entry]:
    seen: list[Entry] = []
    token = ""
    while True:
        page = await h.ranking.top(board.id, Window.ALL_TIME, size, token)
        seen += page.entries
        token = page.next_token
        if not token:
            return seen
        if between is not None:
            await between()


@pytest.mark.parametrize("policy", [Policy.BEST, Policy.LATEST])
async def test_pages_list_every_player_exactly_once_while_scores_change(h: Harness, policy: Policy) -> None:
    board = await h.board(policy=policy)
    rng = random.Random(7)
    players = [user() for _ in range(120)]
    await h.apply(*(ev(board, u, rng.randint(0, 50), T0 + i) for i, u in enumerate(players)))
    before = await h.top_all(board)
    clock = iter(range(T0 + 1000, T0 + 10**6))

    async def churn() -> None:
        # Unseen players overtake the cursor, seen ones fall behind it (latest), newcomers join,
        # someone is hidden: each would be skipped or repeated by a plain offset or keyset.
        moves = [ev(board, rng.choice(players), rng.randint(-20, 120), next(clock)) for _ in range(15)]
        moves += [ev(board, user(), rng.randint(0, 120), next(clock)) for _ in range(3)]
        await h.apply(*moves)

    seen = await _page_through(h, board, 7, churn)
    assert sorted(e.user_id for e in seen) == sorted(players)  # exactly once each, no newcomer
    assert await h.redis.zcard(f"{h.store.base(board.id)}:o:a") > 0  # replaced entries were kept
    # The pages show the board as it was at the first page: same order, scores and ranks.
    assert [(e.user_id, e.score, e.rank) for e in seen] == [(e.user_id, e.score, e.rank) for e in before]
    after = await h.top_all(board)
    assert len(after) > len(before)


async def test_pages_stay_consistent_under_concurrent_writers(h: Harness) -> None:
    board = await h.board()
    rng = random.Random(11)
    players = [user() for _ in range(300)]
    await h.apply(*(ev(board, u, rng.randint(0, 1000), T0) for u in players))
    stop = asyncio.Event()

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        t = T0 + seed * 10**6
        while not stop.is_set():
            t += 1
            await h.apply(*(ev(board, local.choice(players), local.randint(0, 2000), t) for _ in range(5)))
            await asyncio.sleep(0)

    writers = [asyncio.create_task(writer(s)) for s in range(3)]
    try:
        seen = await _page_through(h, board, 13, lambda: asyncio.sleep(0.002))
    finally:
        stop.set()
        await asyncio.gather(*writers)
    ids = [e.user_id for e in seen]
    assert len(ids) == len(set(ids)) == len(players)
    stored = [-e.score for e in seen]
    assert stored == sorted(stored)


async def test_page_tokens_are_checked(h: Harness) -> None:
    board, other = await h.board(), await h.board()
    await h.apply(*(ev(board, user(), i) for i in range(5)))
    page = await h.ranking.top(board.id, Window.ALL_TIME, 2)
    with pytest.raises(InvalidArgument):
        await h.ranking.top(board.id, Window.ALL_TIME, 2, "garbage!")
    with pytest.raises(InvalidArgument):
        await h.ranking.top(other.id, Window.ALL_TIME, 2, page.next_token)
    with pytest.raises(InvalidArgument):
        await h.ranking.top(board.id, Window.ALL_TIME, -1)
    assert len((await h.ranking.top(board.id, Window.ALL_TIME, 0)).entries) == 5  # 0 = default 10
    h.clock.now_ms += 601_000
    with pytest.raises(InvalidArgument) as err:
        await h.ranking.top(board.id, Window.ALL_TIME, 2, page.next_token)
    assert err.value.reason == "PAGE_TOKEN_EXPIRED"


# --- hidden players ---------------------------------------------------------------------------------------------


async def test_hidden_players_vanish_everywhere_and_come_back(h: Harness) -> None:
    board = await h.board(windows=[Window.DAILY], weight=1, policy=Policy.SUM)
    cheat, a, b = user(), user(), user()
    await h.apply(ev(board, cheat, 100), ev(board, a, 50), ev(board, b, 40))
    await h.ranking.set_hidden(cheat, True)
    g = await h.catalog.get(GLOBAL_ID)
    for target, window in ((board, Window.ALL_TIME), (board, Window.DAILY), (g, Window.ALL_TIME)):
        entries = await h.top_all(target, window)
        assert [(e.user_id, e.rank) for e in entries] == [(a, 1), (b, 2)]
        with pytest.raises(NotFound):
            await h.ranking.user_rank(target.id, window, cheat)
    # Their events still count towards their (hidden) standing.
    (result,) = await h.apply(ev(board, cheat, 5, T0 + 1))
    assert result.entry is not None and (result.entry.score, result.entry.rank) == (105, 0)
    assert [e.user_id for e in await h.top_all(board)] == [a, b]
    await h.ranking.set_hidden(cheat, False)
    for target, window in ((board, Window.ALL_TIME), (board, Window.DAILY), (g, Window.ALL_TIME)):
        entries = await h.top_all(target, window)
        assert [(e.user_id, e.score, e.rank) for e in entries] == [(cheat, 105, 1), (a, 50, 2), (b, 40, 3)]


async def test_boards_created_later_know_the_hidden_players(h: Harness) -> None:
    cheat = user()
    await h.ranking.set_hidden(cheat, True)
    try:
        board = await h.board()
        await h.apply(ev(board, cheat, 1), ev(board, user(), 0))
        assert len(await h.top_all(board)) == 1
    finally:
        await h.ranking.set_hidden(cheat, False)


# --- one call, many events ------------------------------------------------------------------------------------------


async def _board_keys(h: Harness, board: Board) -> dict[str, Any]:
    """Every key of a board (named relative to its base) with its content."""
    base = h.store.base(board.id)
    state: dict[str, Any] = {}
    async for raw in h.redis.scan_iter(match=base.replace("{", "\\{").replace("}", "\\}") + "*"):
        key = raw.decode()
        kind = (await h.redis.type(key)).decode()
        if kind == "zset":
            state[key[len(base) :]] = await h.redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key[len(base) :]] = sorted((await h.redis.hgetall(key)).items())  # type: ignore[misc]
        elif kind == "set":
            state[key[len(base) :]] = sorted(await h.redis.smembers(key))  # type: ignore[misc]
        elif kind == "list":
            state[key[len(base) :]] = await h.redis.lrange(key, 0, -1)  # type: ignore[misc]
        else:
            state[key[len(base) :]] = await h.redis.get(key)
    return state


async def test_a_batch_answers_and_writes_as_its_events_one_at_a_time(h: Harness) -> None:
    # The apply script reads the hidden set, the page flag, the change counter and the number
    # of ranked players once per call and keeps them up to date itself: one call of many
    # events must answer, count and tombstone exactly as one call per event.
    batched, single = boards = [await h.board(policy=Policy.SUM, windows=[Window.DAILY]) for _ in range(2)]
    a, b, c, d, cheat = (user() for _ in range(5))
    await h.ranking.set_hidden(cheat, True)
    try:
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for board in boards:
            first = [ev(board, u, s, event_id=i) for u, s, i in zip((a, b, cheat), (10, 20, 30), ids, strict=True)]
            await h.apply(*first)  # 6 changes
            assert (await h.ranking.top(board.id, Window.ALL_TIME, 1)).next_token  # pages in use
        again = str(uuid.uuid4())
        scores = [(a, 5, ""), (c, 7, ""), (cheat, 1, ""), (a, 0, ""), (b, 1, again), (b, 1, again)]
        scores += [(c, 3, ""), (d, 0, "")]
        events = [ev(batched, u, s, T0 + 1 + i, event_id=e) for i, (u, s, e) in enumerate(scores)]
        now = h.ranking.now_ms()

        def fields(board: Board, evs: Sequence[ScoreEvent]) -> list[Any]:
            out: list[Any] = []
            for e in evs:
                out += h.ranking._event_fields(board, e, user_key(e.user_id), now)
            return out

        width, policy = 9, int(Policy.SUM)
        answers = await h.store.apply_one_board(batched.id, policy, width, fields(batched, events), now)
        one_by_one = []
        for e in events:
            one_by_one += await h.store.apply_one_board(single.id, policy, width, fields(single, [e]), now) or []
        assert answers == one_by_one
        assert answers is not None
        assert [x.status for x in answers] == [0, 0, 0, 0, 0, 1, 0, 0]
        assert [x.total for x in answers] == [2, 3, 3, 3, 3, 3, 3, 4]  # c and d join; the cheat is hidden
        assert [x.rank for x in answers][2] == 0
        for board in boards:
            base = h.store.base(board.id)
            assert await h.redis.get(f"{base}:q") == b"18"  # 6 + 2 per changed event (both periods)
            assert await h.redis.zcard(f"{base}:o:a") == 3  # a, b and c replaced while pages are in use
            assert await h.redis.zcard(f"{base}:r:a") == answers[-1].total
        # Unhiding moves the cheat back (hide.lua counts 2 changes), and the next answer counts them.
        await h.ranking.set_hidden(cheat, False)
        last = [ev(batched, cheat, 1, T0 + 100), ev(batched, d, 1, T0 + 101)]
        for board in boards:
            answers = await h.store.apply_one_board(board.id, policy, width, fields(board, last), now)
            assert answers is not None
            assert [(x.rank, x.total) for x in answers] == [(1, 5), (5, 5)]
            assert await h.redis.get(f"{h.store.base(board.id)}:q") == b"24"
        assert await _board_keys(h, batched) == await _board_keys(h, single)
    finally:
        await h.ranking.set_hidden(cheat, False)


# --- global ------------------------------------------------------------------------------------------------------


async def test_global_is_the_weighted_sum_of_standings(h: Harness) -> None:
    kills = await h.board(policy=Policy.BEST, weight=1)
    race = await h.board(policy=Policy.BEST, order=ASC, weight=0.5)
    off = await h.board(weight=0)
    a, b = user(), user()
    await h.apply(ev(kills, a, 100), ev(race, a, 31), ev(off, a, 1000), ev(kills, b, 120), ev(race, b, 10))
    g = await h.catalog.get(GLOBAL_ID)
    assert await h.score(g, a) == 100 + 16  # round(0.5 * 31) = 16 (half away from zero)
    assert await h.score(g, b) == 120 + 5
    # A worse submission changes nothing; a better one adds the weighted delta.
    await h.apply(ev(kills, a, 90, T0 + 1), ev(race, a, 20, T0 + 2))
    assert await h.score(g, a) == 100 + 10
    assert [e.user_id for e in await h.top_all(g)] == [b, a]
    # Reweighing and deleting a board are reflected at once.
    kills = await h.reweigh(kills, 2.0)
    assert await h.score(g, a) == 200 + 10
    deleted = await h.catalog_store.delete(race.id)
    assert deleted is not None
    await h.ranking.board_deleted(deleted)
    assert (await h.score(g, a), await h.score(g, b)) == (200, 240)
    # Raising a weight from 0 replays that board's history into global.
    off = await h.reweigh(off, 1.0)
    await asyncio.gather(*h.ranking._tasks)
    assert await h.score(g, a) == 1200


# --- rebuild -------------------------------------------------------------------------------------------------------


async def _snapshot(h: Harness, board: Board) -> dict[str, Any]:
    state: dict[str, Any] = {"all": await h.top_all(board)}
    for window in board.windows:
        for t in (T0, T0 + 86400_000 * 3):
            try:
                state[f"{window}-{t}"] = (await h.ranking.top(board.id, window, 1000, period_time_ms=t)).entries
            except NotFound:
                state[f"{window}-{t}"] = None
    return state


async def test_rebuild_reproduces_the_live_state_exactly(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM, windows=[Window.DAILY, Window.WEEKLY], weight=1.5)
    other = await h.board(weight=1)
    rng = random.Random(3)
    players = [user() for _ in range(40)]
    hidden = players[0]
    events = [
        ev(board, rng.choice(players), rng.randint(-50, 100), T0 + rng.randint(0, 5 * 86400_000)) for _ in range(300)
    ]
    events.sort(key=lambda e: e.achieved_ms)
    for i in range(0, len(events), 50):
        await h.apply(*events[i : i + 50])
    await h.apply(*(ev(other, p, rng.randint(0, 10)) for p in players[:10]))
    await h.ranking.set_hidden(hidden, True)
    await h.apply(ev(board, hidden, 7, T0 + 6 * 86400_000))
    h.clock.now_ms = T0 + 6 * 86400_000
    g = await h.catalog.get(GLOBAL_ID)
    live, live_global = await _snapshot(h, board), await h.top_all(g)

    # Same state after a rebuild, and after a rebuild from nothing.
    replayed, total = await h.ranking.rebuild(board.id)
    assert replayed == len(h.history[board.id]) and total == len(live["all"])
    assert await _snapshot(h, board) == live
    assert await h.top_all(g) == live_global
    await h.store.delete_board(board.id)
    await h.redis.delete(f"{h.store.base(GLOBAL_ID)}:m:{board.id}")
    await h.ranking.rebuild(board.id)
    assert await _snapshot(h, board) == live
    assert await h.top_all(g) == live_global
    await h.ranking.rebuild(GLOBAL_ID)
    assert await h.top_all(g) == live_global
    await h.ranking.set_hidden(hidden, False)


async def test_events_arriving_during_a_rebuild_are_queued_then_applied(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM, weight=1)
    a = user()
    await h.apply(ev(board, a, 10))
    gate, release = asyncio.Event(), asyncio.Event()
    original = h.source

    async def slow_source(board_id: str) -> AsyncIterator[Sequence[ScoreEvent]]:
        async for chunk in original(board_id):
            yield chunk
        gate.set()
        await release.wait()

    h.ranking._history = slow_source
    rebuild = asyncio.create_task(h.ranking.rebuild(board.id))
    await gate.wait()
    (queued,) = await h.apply(ev(board, a, 5, T0 + 1))
    assert queued.deferred and queued.entry is not None and queued.entry.score == 10
    release.set()
    await rebuild
    assert await h.score(board, a) == 15
    assert await h.score(await h.catalog.get(GLOBAL_ID), a) == 15


async def test_a_failed_rebuild_leaves_the_live_state_and_queued_events_applied(h: Harness) -> None:
    board = await h.board(policy=Policy.SUM)
    a = user()
    await h.apply(ev(board, a, 10))

    async def broken(board_id: str) -> AsyncIterator[Sequence[ScoreEvent]]:
        await h.apply(ev(board, a, 1, T0 + 1))  # arrives mid-rebuild: queued
        yield []
        raise RuntimeError("history went away")

    h.ranking._history = broken
    with pytest.raises(RuntimeError):
        await h.ranking.rebuild(board.id)
    assert await h.score(board, a) == 11


async def test_the_script_channel_reconnects_after_losing_its_connection(h: Harness) -> None:
    board = await h.board()
    me = user()
    await h.apply(ev(board, me, 3))
    channel = h.store._channel
    assert channel.supported
    client_id = await channel.call("CLIENT", "ID")
    await h.redis.client_kill_filter(_id=client_id)
    for _ in range(50):  # the loss is noticed when the socket closes
        try:
            assert await h.score(board, me) == 3
        except Exception as exc:
            assert getattr(exc, "reason", "") == "REDIS_UNAVAILABLE"
            await asyncio.sleep(0.01)
        else:
            break
    assert await channel.call("CLIENT", "ID") != client_id
    assert await h.score(board, me) == 3


def test_period_keys() -> None:
    from services.ranking.windows import expires_at_ms, period_of

    sunday = ms(2026, 11, 29, 23, 59)
    assert period_of(Window.DAILY, sunday).key == "d20261129"
    assert period_of(Window.WEEKLY, sunday).key == "w2026-48"
    assert period_of(Window.WEEKLY, ms(2026, 11, 30)).key == "w2026-49"
    assert period_of(Window.WEEKLY, ms(2027, 1, 1)).key == "w2026-53"  # ISO: Friday 1 Jan 2027
    assert period_of(Window.MONTHLY, sunday).key == "m202611"
    assert expires_at_ms(period_of(Window.MONTHLY, ms(2026, 12, 5)), 1) == ms(2027, 2, 1)
    assert expires_at_ms(period_of(Window.WEEKLY, sunday), 0) == ms(2026, 11, 30)
    assert period_of(Window.DAILY, ms(2026, 12, 1) - 1).end_ms == ms(2026, 12, 1)
    assert timedelta(milliseconds=ms(2026, 12, 1) - ms(2026, 11, 30)) == timedelta(days=1)
