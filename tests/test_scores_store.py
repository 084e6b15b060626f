"""ScoreService's store and domain against the real PostgreSQL (no gRPC)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
from alembic import command
from sqlalchemy import text

from leaderboard.runtime import migrations
from leaderboard.runtime.config import Settings
from leaderboard.runtime.context import Principal
from leaderboard.runtime.db import create_engine
from leaderboard.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from leaderboard.runtime.ids import canonical_uuid, uuid7
from leaderboard.v1 import common_pb2
from services.scores import score_store, stored_answers
from services.scores.batcher import now_ms
from services.scores.rate_limit import RateLimiter
from services.scores.score_store import ScoreStore
from services.scores.submissions import (
    MAX_SAFE_SCORE,
    BoardRules,
    Submission,
    body_hash,
    check_score,
    parse_request_id,
    resolve_player,
    validate_metadata,
)
from tests.stores import fresh_database

PLAYER_ID = "0b9f1c52-5d3e-4a57-9c1e-6f2d8a4b7e10"
PLAYER = Principal(PLAYER_ID, common_pb2.ROLE_PLAYER, "p1", "Player One", 0)
SERVER = Principal("srv", common_pb2.ROLE_SERVER, "srv", "", 0)


@pytest_asyncio.fixture(loop_scope="session")
async def store(settings: Settings) -> AsyncIterator[ScoreStore]:
    engine = create_engine(settings.postgres_url, pool_size=4)
    store = ScoreStore(engine)
    # As the service does when it starts: without this month's partition, rows would land
    # in the default one and block its creation later (a test's failure at a month's start).
    await store.ensure_partitions(now_ms())
    yield store
    await store.close()
    await engine.dispose()


def player(name: str) -> str:
    """A player id (a UUID, as the history stores it) named by `name` in a test."""
    return name if canonical_uuid(name) == name else str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def make(board: str, user: str, score: int, *, caller: str | None = None, request_id: str | None = None) -> Submission:
    user = player(user)
    item = Submission(
        caller_id=caller or user,
        request_id=request_id or str(uuid.uuid4()),
        leaderboard_id=board,
        user_id=user,
        score=score,
        metadata={"level": "3"},
        submitted_by=caller or user,
        display_name=user.upper(),
        body_hash=body_hash(board, user, score, {"level": "3"}),
        id=uuid7(),
    )
    item.created_at = now_ms()
    return item


def test_validation_rules() -> None:
    rules = BoardRules("b", min_score=0, max_score=100, authoritative=False)
    check_score(rules, "b", 100, PLAYER)
    with pytest.raises(InvalidArgument) as bounds:
        check_score(rules, "b", 101, PLAYER)
    assert bounds.value.reason == "SCORE_OUT_OF_BOUNDS"
    with pytest.raises(InvalidArgument) as huge:
        check_score(rules, "b", MAX_SAFE_SCORE + 1, PLAYER)
    assert huge.value.reason == "SCORE_OUT_OF_RANGE"
    with pytest.raises(NotFound):
        check_score(None, "nope", 1, PLAYER)
    authoritative = BoardRules("b", -10, 10, authoritative=True)
    with pytest.raises(PermissionDenied):
        check_score(authoritative, "b", 1, PLAYER)
    check_score(authoritative, "b", 1, SERVER)


def test_player_resolution_and_inputs() -> None:
    assert resolve_player(PLAYER, "") == PLAYER_ID
    # A caller whose id is not a player's (the platform's own services) must name one.
    internal = Principal("internal:scores", common_pb2.ROLE_SERVER, "internal:scores", "", 0)
    with pytest.raises(InvalidArgument):
        resolve_player(internal, "")
    assert resolve_player(internal, PLAYER_ID) == PLAYER_ID
    someone = str(uuid.uuid4())
    assert resolve_player(SERVER, someone) == someone
    with pytest.raises(InvalidArgument):
        resolve_player(SERVER, "not-a-user-id")
    with pytest.raises(PermissionDenied):
        resolve_player(PLAYER, "someone-else")
    with pytest.raises(InvalidArgument):
        parse_request_id("not-a-uuid")
    with pytest.raises(InvalidArgument):
        validate_metadata({"k": "x" * 1100})
    for nul in ({"k\x00": "v"}, {"k": "v\x00"}):
        with pytest.raises(InvalidArgument):
            validate_metadata(nul)
    assert body_hash("b", "u", 1, {"a": "1", "b": "2"}) == body_hash("b", "u", 1, {"b": "2", "a": "1"})
    assert body_hash("b", "u", 1, {}) != body_hash("b", "u", 2, {})


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(rate_per_second=10, burst=2)
    assert limiter.try_acquire("u", now=0.0) == 0.0
    assert limiter.try_acquire("u", now=0.0) == 0.0
    wait = limiter.try_acquire("u", now=0.0)
    assert wait == pytest.approx(0.1)
    assert limiter.try_acquire("u", now=0.1) == 0.0
    assert limiter.try_acquire("other", now=0.0) == 0.0


def test_rate_limiter_forgets_the_least_recently_seen_players() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1, max_keys=8)
    assert limiter.try_acquire("busy", now=0.0) == 0.0
    for i in range(8):
        limiter.try_acquire(f"p{i}", now=0.0)
        assert limiter.try_acquire("busy", now=0.0) > 0  # seen again: kept, still limited
    for i in range(8, 40):
        limiter.try_acquire(f"p{i}", now=0.0)
    assert limiter.try_acquire("p0", now=0.0) == 0.0  # forgotten: a fresh bucket
    assert limiter.try_acquire("p39", now=0.0) > 0  # recent: remembered


async def test_batch_insert_is_idempotent_per_caller_and_request(store: ScoreStore) -> None:
    board = f"b-{uuid.uuid4().hex[:8]}"
    first = make(board, "u1", 10)
    again = make(board, "u1", 10, request_id=first.request_id)
    other_caller = make(board, "u1", 10, caller="srv", request_id=first.request_id)
    written = await store.insert_batch([first])
    assert written.batch_id is not None and not written.already_stored
    # The cheaper statement fails on the stored request; its fallback skips just that one.
    written = await store.insert_batch([again, other_caller])
    assert written.already_stored == {again.id}  # same id from another caller is another request
    # Right after, a batch skips stored requests at once; its new ones are stored.
    late, new = make(board, "u1", 10, request_id=first.request_id), make(board, "u9", 3)
    written = await store.insert_batch([late, new])
    assert written.already_stored == {late.id}
    assert {e.id for e in await store.board_events(board, None, 10)} == {first.id, other_caller.id, new.id}
    existing = await store.existing_requests([again.key])
    assert existing[again.key].submission_id == first.id
    stored = existing[again.key].stored
    assert stored is not None
    assert stored.score == 10


async def test_outbox_rows_and_deferred_bookkeeping(store: ScoreStore) -> None:
    board = f"b-{uuid.uuid4().hex[:8]}"
    items = [make(board, "u2", 5), make(board, "u3", 6), make(board, "u4", 7)]
    written = await store.insert_batch(items)
    assert written.batch_id is not None
    claim, pending = await store.claim_pending(0.0, 10_000)
    assert claim is not None
    ours = [b for b in pending if b.batch_id == written.batch_id]
    assert [e.event_id for e in ours[0].events] == [i.id for i in items]  # one row, in batch order
    await store.abandon_claim(claim)
    # Answers per batch position; the second had none (a duplicate, or ranking did not answer).
    answers = stored_answers.pack([b"first", None, b"third"])
    await store.insert_batch([], delivered_batches=[written.batch_id], answers=[(written.batch_id, answers)])
    existing = await store.existing_requests([i.key for i in items])
    assert [existing[i.key].response for i in items] == [b"first", None, b"third"]
    claim, pending = await store.claim_pending(0.0, 10_000)
    assert claim is not None
    assert written.batch_id not in {b.batch_id for b in pending}
    await store.abandon_claim(claim)


def test_stored_answers_round_trip() -> None:
    answers = [b"", None, b"x" * 300, b"\x00\xff", None]
    packed = stored_answers.pack(answers)
    assert [stored_answers.answer_at(packed, i + 1) for i in range(len(answers))] == answers
    assert stored_answers.answer_at(packed, 6) is None
    assert stored_answers.answer_at(b"", 1) is None


def test_body_hashes_never_change() -> None:
    # Stored with each request for its retention window: a retry after an upgrade must hash
    # its body to the same bytes, or it would be refused as REQUEST_ID_REUSED.
    player = "01234567-89ab-4def-8123-456789abcdef"
    assert body_hash("board-1", player, 42, {}).hex() == "b0ab753808cf39cd10bc172c8e21587e"
    metadata = {"mode": "ranked", "level": "3"}
    assert body_hash("board-1", player, -7, metadata).hex() == "fabdd03d9c1946da5e2989442d7198ca"


async def test_relay_lock_admits_one_claim_at_a_time(store: ScoreStore) -> None:
    first = None
    for _ in range(50):  # a running service's relay may hold the lock for a moment
        first, _ = await store.claim_pending(0.0, 1)
        if first is not None:
            break
        await asyncio.sleep(0.05)
    second, events = await store.claim_pending(0.0, 1)
    assert first is not None
    assert second is None and events == []
    await store.abandon_claim(first)
    third, _ = await store.claim_pending(0.0, 1)
    assert third is not None
    await store.abandon_claim(third)


async def test_history_pages_newest_first_with_filters(store: ScoreStore) -> None:
    board = f"b-{uuid.uuid4().hex[:8]}"
    user = str(uuid.uuid4())
    items = []
    for score in range(7):
        item = make(board, user, score)
        item.created_at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=score)
        items.append(item)
    await store.insert_batch(items)
    await store.insert_batch([make("elsewhere", user, 99)])
    seen: list[int] = []
    after = None
    while True:
        page = await store.history(user_id=user, leaderboard_id=board, start=None, end=None, after=after, limit=3)
        seen += [s.score for s in page]
        if len(page) < 3:
            break
        last = page[-1]
        assert last.created_at is not None
        after = (last.created_at, last.id)
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    window = await store.history(
        user_id=user,
        leaderboard_id=board,
        start=datetime(2026, 11, 1, 0, 2, tzinfo=UTC),
        end=datetime(2026, 11, 1, 0, 4, tzinfo=UTC),
        after=None,
        limit=10,
    )
    assert [s.score for s in window] == [3, 2]
    replay = await store.board_events(board, None, 100)
    assert [s.score for s in replay] == list(range(7))


async def test_monthly_partitions_exist_and_receive_rows(store: ScoreStore, settings: Settings) -> None:
    await store.ensure_partitions(datetime(2026, 11, 15, tzinfo=UTC))
    await store.ensure_partitions(datetime(2026, 11, 15, tzinfo=UTC))  # idempotent
    item = make(f"b-{uuid.uuid4().hex[:8]}", "u3", 1)
    item.created_at = datetime(2026, 12, 3, tzinfo=UTC)
    await store.insert_batch([item])
    engine = create_engine(settings.postgres_url, pool_size=1)
    async with engine.connect() as conn:
        where = (
            await conn.execute(
                text("SELECT tableoid::regclass::text FROM scores.score_events WHERE id = CAST(:id AS uuid)"),
                {"id": item.id},
            )
        ).scalar()
    await engine.dispose()
    assert where == "scores.score_events_y2026m12"


async def test_concurrent_identical_batches_store_one_row(store: ScoreStore) -> None:
    board = f"b-{uuid.uuid4().hex[:8]}"
    request_id = str(uuid.uuid4())
    items = [make(board, "u4", 7, request_id=request_id) for _ in range(20)]
    results = await asyncio.gather(*(store.insert_batch([i]) for i in items))
    assert sum(1 for r in results if not r.already_stored) == 1
    events = await store.board_events(board, None, 100)
    assert len(events) == 1


def test_batch_outbox_migration_keeps_pending_and_parked_events(settings: Settings) -> None:
    # s0002 turns per-event outbox rows into one-event batches (in order) and parked rows
    # into parked_events; its downgrade turns them back.
    pending, parked = [str(uuid.uuid4()) for _ in range(3)], str(uuid.uuid4())
    with fresh_database(settings.postgres_url) as url:
        migrations.upgrade(url, ("scores",), "s0001")
        with psycopg.connect(url, autocommit=True) as conn:
            for event_id in pending:
                conn.execute("INSERT INTO scores.outbox (event_id, created_at) VALUES (%s, now())", (event_id,))
            conn.execute(
                "INSERT INTO scores.outbox (event_id, created_at, parked_at, last_error)"
                " VALUES (%s, now(), now(), 'x')",
                (parked,),
            )
            for event_id in [*pending, parked]:
                conn.execute(
                    "INSERT INTO scores.score_events (id, created_at, leaderboard_id, user_id, score, request_id,"
                    " submitted_by) VALUES (%s, now(), 'b', gen_random_uuid(), 1, gen_random_uuid(), 'u')",
                    (event_id,),
                )
        migrations.upgrade(url, ("scores",))
        with psycopg.connect(url, autocommit=True) as conn:
            batches = conn.execute("SELECT CAST(event_ids AS text[]) FROM scores.outbox ORDER BY id").fetchall()
            assert [list(b[0]) for b in batches] == [[e] for e in pending]
            assert conn.execute("SELECT CAST(event_id AS text) FROM scores.parked_events").fetchall() == [(parked,)]
        command.downgrade(migrations.alembic_config("scores", url), "s0001")
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT CAST(event_id AS text), parked_at IS NOT NULL FROM scores.outbox ORDER BY id"
            ).fetchall()
            assert rows == [*((e, False) for e in pending), (parked, True)]


def test_batch_values_are_stored_uncompressed(settings: Settings) -> None:
    # s0004: a batch's event ids and first answers skip pglz (it cost 5% of PostgreSQL's CPU
    # under batch ingest); its downgrade restores the default.
    storage = (
        "SELECT attrelid::regclass::text, attstorage FROM pg_attribute WHERE (attrelid, attname) IN"
        " (('scores.outbox'::regclass, 'event_ids'), ('scores.batch_answers'::regclass, 'answers')) ORDER BY 1"
    )
    with fresh_database(settings.postgres_url) as url:
        migrations.upgrade(url, ("scores",))
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(storage).fetchall() == [("scores.batch_answers", "e"), ("scores.outbox", "e")]
        command.downgrade(migrations.alembic_config("scores", url), "s0003")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(storage).fetchall() == [("scores.batch_answers", "x"), ("scores.outbox", "x")]


def test_id_columns_compare_bytewise(settings: Settings) -> None:
    # s0005: the indexed id columns are COLLATE "C" whatever the database's default (a
    # locale's rules cost ~5 µs per submission in index inserts); the downgrade restores it.
    collations = (
        "SELECT attrelid::regclass::text || '.' || attname, collname FROM pg_attribute a"
        " JOIN pg_collation c ON c.oid = a.attcollation"
        " WHERE (attrelid, attname) IN (('scores.score_events'::regclass, 'leaderboard_id'),"
        " ('scores.score_events'::regclass, 'user_id'), ('scores.submission_requests'::regclass, 'caller_id'))"
        " ORDER BY 1"
    )
    names = [
        "scores.score_events.leaderboard_id",
        "scores.score_events.user_id",
        "scores.submission_requests.caller_id",
    ]
    with fresh_database(settings.postgres_url) as url:
        migrations.upgrade(url, ("scores",), "s0005")  # s0007 makes user_id a uuid
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(collations).fetchall() == [(n, "C") for n in names]
            # Every partition, existing and new, follows its parent.
            conn.execute(
                "CREATE TABLE scores.score_events_test PARTITION OF scores.score_events"
                " FOR VALUES FROM ('2001-01-01') TO ('2001-02-01')"
            )
            parts = conn.execute(
                "SELECT DISTINCT collname FROM pg_inherits i JOIN pg_attribute a ON a.attrelid = i.inhrelid"
                " JOIN pg_collation c ON c.oid = a.attcollation"
                " WHERE i.inhparent = 'scores.score_events'::regclass AND a.attname IN ('leaderboard_id', 'user_id')"
            ).fetchall()
            assert parts == [("C",)]
        command.downgrade(migrations.alembic_config("scores", url), "s0004")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(collations).fetchall() == [(n, "default") for n in names]


def test_idempotency_keys_lead_with_the_request_id(settings: Settings) -> None:
    # s0006: (request_id, caller_id), so index inserts under one game server's caller id
    # do not compare equal caller ids first; the downgrade restores (caller_id, request_id).
    key = (
        "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = 'scores.submission_requests'::regclass AND i.indisprimary"
    )
    with fresh_database(settings.postgres_url) as url:
        migrations.upgrade(url, ("scores",))
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(key).fetchone() == (["request_id", "caller_id"],)
        command.downgrade(migrations.alembic_config("scores", url), "s0005")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(key).fetchone() == (["caller_id", "request_id"],)


def test_history_user_ids_are_uuids(settings: Settings) -> None:
    # s0007: the history's user_id is a uuid (its per-user index a third smaller); a row
    # whose user_id is not a UUID stops the upgrade; the downgrade restores varchar "C".
    column = (
        "SELECT format_type(a.atttypid, a.atttypmod), coalesce(c.collname, '') FROM pg_attribute a"
        " LEFT JOIN pg_collation c ON c.oid = a.attcollation"
        " WHERE a.attrelid = 'scores.score_events'::regclass AND a.attname = 'user_id'"
    )
    insert = (
        "INSERT INTO scores.score_events (id, created_at, leaderboard_id, user_id, score, request_id,"
        " submitted_by) VALUES (gen_random_uuid(), now(), 'b', %s, 1, gen_random_uuid(), 's')"
    )
    player_id = str(uuid.uuid4())
    with fresh_database(settings.postgres_url) as url:
        migrations.upgrade(url, ("scores",), "s0006")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(insert, (player_id.upper(),))
            conn.execute(insert, ("not-a-player",))
        with pytest.raises(RuntimeError, match="1 score history rows"):
            migrations.upgrade(url, ("scores",))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM scores.score_events WHERE user_id = 'not-a-player'")
        migrations.upgrade(url, ("scores",))
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(column).fetchone() == ("uuid", "")
            assert conn.execute("SELECT CAST(user_id AS text) FROM scores.score_events").fetchall() == [(player_id,)]
        command.downgrade(migrations.alembic_config("scores", url), "s0006")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(column).fetchone() == ("character varying(64)", "C")
            assert conn.execute("SELECT user_id FROM scores.score_events").fetchall() == [(player_id,)]


async def test_partition_creation_gives_way_to_a_busy_table(settings: Settings) -> None:
    # Creating a partition locks score_events; queued behind a long transaction it would
    # make every insert queue behind it. It gives up after its lock timeout instead, and
    # creates the month on a later try.
    engine = create_engine(settings.postgres_url, pool_size=2)
    store = ScoreStore(engine, timeout_seconds=2.0)
    month = datetime(2031, 6, 15, tzinfo=UTC)
    exists = text("SELECT to_regclass('scores.score_events_y2031m06') IS NOT NULL")
    try:
        async with engine.connect() as reader:
            await reader.execute(text("SELECT count(*) FROM scores.score_events"))  # holds its lock
            started = time.monotonic()
            await store.ensure_partitions(month, months_ahead=0)
            assert time.monotonic() - started < 10
            async with engine.connect() as conn:
                assert not (await conn.execute(exists)).scalar()
            # Nothing of the DDL is left in the lock queue: ingest goes on meanwhile.
            written = await store.insert_batch([make(f"b-{uuid.uuid4().hex[:8]}", "u5", 1)])
            assert written.batch_id is not None
        await store.ensure_partitions(month, months_ahead=0)
        async with engine.connect() as conn:
            assert (await conn.execute(exists)).scalar()
    finally:
        await store.close()
        await engine.dispose()


async def test_expired_request_ids_are_forgotten_and_history_kept(store: ScoreStore, settings: Settings) -> None:
    board = f"b-{uuid.uuid4().hex[:8]}"
    old, recent = make(board, "u6", 1), make(board, "u7", 2)
    old.created_at = now_ms() - timedelta(days=10)
    first = await store.insert_batch([old])
    assert first.batch_id is not None
    second = await store.insert_batch([recent], answers=[(first.batch_id, stored_answers.pack([b"first answer"]))])
    assert second.batch_id is not None
    engine = create_engine(settings.postgres_url, pool_size=1)
    try:
        async with engine.begin() as conn:  # the old batch's answers stored ten days ago too
            await conn.execute(
                text("UPDATE scores.batch_answers SET created_at = now() - interval '10 days' WHERE batch_id = :b"),
                {"b": first.batch_id},
            )
        assert await store.purge_requests(now_ms() - timedelta(days=7), chunk=1) >= 1
        assert set(await store.existing_requests([old.key, recent.key])) == {recent.key}
        async with engine.connect() as conn:
            left = (
                await conn.execute(
                    text("SELECT batch_id FROM scores.batch_answers WHERE batch_id = :b"), {"b": first.batch_id}
                )
            ).all()
        assert not left
    finally:
        await engine.dispose()
    # The same request id once more is a new submission; the history keeps both.
    again = make(board, "u6", 1, request_id=old.request_id)
    assert not (await store.insert_batch([again])).already_stored
    assert len(await store.board_events(board, None, 10)) == 3


async def test_kept_batch_connections_are_recycled(store: ScoreStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # As the engine's pool_recycle: a kept batch connection older than the limit is
    # replaced (proxies and servers drop old idle sessions), a young one is reused.
    kept = store._batch_connections

    async def backend_after_a_batch() -> int:
        await store.insert_batch([make(f"b-{uuid.uuid4().hex[:8]}", "u8", 1)])
        return kept._idle[-1][0].info.backend_pid

    first = await backend_after_a_batch()
    assert await backend_after_a_batch() == first
    monkeypatch.setattr(score_store, "POOL_RECYCLE_SECONDS", 0.0)
    assert await backend_after_a_batch() != first


async def test_text_is_stored_exactly_as_sent(store: ScoreStore) -> None:
    # The batch reaches PostgreSQL as one JSON document: quotes, backslashes, control
    # characters and non-ASCII text must come back byte for byte.
    board = f"b-{uuid.uuid4().hex[:8]}"
    user = str(uuid.uuid4())
    odd = 'Zoë "the \\ one" 日本 🎮\t\n\x01'
    item = make(board, user, 5)
    item.display_name = odd
    item.metadata = {odd: odd, "k": '{"not": "json"}'}
    await store.insert_batch([item])
    (found,) = await store.history(user_id=user, leaderboard_id=board, start=None, end=None, after=None, limit=5)
    assert found.metadata == item.metadata
    (event,) = await store.board_events(board, None, 5)
    assert event.display_name == odd
