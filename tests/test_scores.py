"""ScoreService over real gRPC, with real auth, ranking, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leaderboard.client import Client, channel_options, error_details
from leaderboard.runtime.db import create_engine
from leaderboard.runtime.embedded import free_port
from leaderboard.runtime.ids import uuid7
from leaderboard.runtime.server import start_service
from leaderboard.runtime.service_token import ServiceToken
from leaderboard.v1 import common_pb2, ranking_pb2, scores_pb2
from services.scores import ranking_link
from services.scores.batcher import SubmissionWriter, SubmitBatcher, to_proto
from services.scores.cpu_load import CpuLoad
from services.scores.outbox_relay import OutboxRelay
from services.scores.ranking_link import RankingLink
from services.scores.score_store import ScoreStore
from services.scores.submissions import MAX_SAFE_SCORE, Submission, body_hash
from tests.accounts import Account, new_admin, new_game_server, new_player
from tests.conftest import Stack


async def make_board(
    admin: Account,
    *,
    policy: common_pb2.UpdatePolicy.ValueType = common_pb2.UPDATE_POLICY_SUM,
    authoritative: bool = False,
    min_score: int | None = None,
    max_score: int | None = None,
) -> str:
    board = common_pb2.Leaderboard(
        id=f"scores-{uuid.uuid4().hex[:10]}",
        game_id="game-1",
        display_name="Scores test",
        sort_order=common_pb2.SORT_ORDER_DESCENDING,
        update_policy=policy,
        authoritative=authoritative,
    )
    if min_score is not None:
        board.min_score = min_score
    if max_score is not None:
        board.max_score = max_score
    reply = await admin.client.ranking.CreateLeaderboard(
        ranking_pb2.CreateLeaderboardRequest(leaderboard=board), metadata=admin.client.metadata
    )
    return reply.leaderboard.id


def submit(
    account: Account, board: str, score: int, *, request_id: str | None = None, user_id: str = ""
) -> scores_pb2.SubmitScoreRequest:
    return scores_pb2.SubmitScoreRequest(
        leaderboard_id=board, score=score, request_id=request_id or str(uuid.uuid4()), user_id=user_id
    )


async def rank_of(account: Account, board: str, user_id: str) -> ranking_pb2.GetUserRankResponse:
    return await account.client.ranking.GetUserRank(
        ranking_pb2.GetUserRankRequest(leaderboard_id=board, user_id=user_id), metadata=account.client.metadata
    )


async def history_rows(stack: Stack, board: str) -> int:
    engine = create_engine(stack.settings.postgres_url, pool_size=1)
    async with engine.connect() as conn:
        count = (
            await conn.execute(text("SELECT count(*) FROM scores.score_events WHERE leaderboard_id = :b"), {"b": board})
        ).scalar()
    await engine.dispose()
    return int(count or 0)


async def test_submit_is_acknowledged_with_rank(stack: Stack) -> None:
    admin, player = await new_admin(stack), await new_player(stack, "Ada")
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_BEST)
    reply = await player.client.scores.SubmitScore(submit(player, board, 120), metadata=player.client.metadata)
    assert reply.applied and reply.improved
    assert reply.submission.user_id == player.user_id
    assert reply.submission.score == 120
    assert reply.entry.rank == 1 and reply.entry.score == 120
    lower = await player.client.scores.SubmitScore(submit(player, board, 80), metadata=player.client.metadata)
    assert lower.applied and not lower.improved and lower.entry.score == 120


async def test_twenty_concurrent_duplicates_store_and_apply_once(stack: Stack) -> None:
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_SUM)
    request_id = str(uuid.uuid4())
    replies = await asyncio.gather(
        *(
            player.client.scores.SubmitScore(
                submit(player, board, 7, request_id=request_id), metadata=player.client.metadata
            )
            for _ in range(20)
        )
    )
    assert len({r.submission.id for r in replies}) == 1
    assert await history_rows(stack, board) == 1
    standing = await rank_of(player, board, player.user_id)
    assert standing.entry.score == 7  # a sum board: a second apply would show 14
    # A later retry gets the first answer back.
    again = await player.client.scores.SubmitScore(
        submit(player, board, 7, request_id=request_id), metadata=player.client.metadata
    )
    assert again.submission.id == replies[0].submission.id


async def test_an_immediate_retry_gets_the_first_answer(stack: Stack) -> None:
    # The first answers reach PostgreSQL a moment after they are sent (with the next
    # batch): a retry sent straight away must still get the first answer, rank included.
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_BEST)
    for score in (10, 30, 20):
        request = submit(player, board, score)
        first = await player.client.scores.SubmitScore(request, metadata=player.client.metadata)
        again = await player.client.scores.SubmitScore(request, metadata=player.client.metadata)
        assert first.applied
        assert again == first


async def test_same_request_id_with_other_body_is_rejected(stack: Stack) -> None:
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin)
    request_id = str(uuid.uuid4())
    await player.client.scores.SubmitScore(
        submit(player, board, 5, request_id=request_id), metadata=player.client.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await player.client.scores.SubmitScore(
            submit(player, board, 6, request_id=request_id), metadata=player.client.metadata
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(err.value)[0] == "REQUEST_ID_REUSED"
    assert await history_rows(stack, board) == 1


async def test_who_may_submit_what(stack: Stack) -> None:
    admin, player, other = await new_admin(stack), await new_player(stack), await new_player(stack)
    server = await new_game_server(stack)
    open_board = await make_board(admin)
    server_only = await make_board(admin, authoritative=True)

    with pytest.raises(grpc.aio.AioRpcError) as for_other:
        await player.client.scores.SubmitScore(
            submit(player, open_board, 1, user_id=other.user_id), metadata=player.client.metadata
        )
    assert for_other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as authoritative:
        await player.client.scores.SubmitScore(submit(player, server_only, 1), metadata=player.client.metadata)
    assert authoritative.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(authoritative.value)[0] == "LEADERBOARD_AUTHORITATIVE"

    reply = await server.client.scores.SubmitScore(
        submit(server, server_only, 3, user_id=player.user_id), metadata=server.client.metadata
    )
    assert reply.submission.user_id == player.user_id and reply.applied
    assert await history_rows(stack, open_board) == 0


@pytest.mark.parametrize(
    ("score", "reason"),
    [(101, "SCORE_OUT_OF_BOUNDS"), (-1, "SCORE_OUT_OF_BOUNDS"), (2**53 + 1, "SCORE_OUT_OF_RANGE")],
)
async def test_bounds_and_range_enforced_nothing_stored(stack: Stack, score: int, reason: str) -> None:
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin, min_score=0, max_score=100)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await player.client.scores.SubmitScore(submit(player, board, score), metadata=player.client.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(err.value) == (reason, {"field": "score"})
    assert await history_rows(stack, board) == 0


async def test_bad_inputs_name_the_field(stack: Stack) -> None:
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin)
    cases: Sequence[tuple[scores_pb2.SubmitScoreRequest, str]] = [
        (scores_pb2.SubmitScoreRequest(leaderboard_id=board, score=1, request_id="nope"), "request_id"),
        (scores_pb2.SubmitScoreRequest(score=1, request_id=str(uuid.uuid4())), "leaderboard_id"),
        (
            scores_pb2.SubmitScoreRequest(
                leaderboard_id=board, score=1, request_id=str(uuid.uuid4()), metadata={"k": "v" * 2000}
            ),
            "metadata",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await player.client.scores.SubmitScore(request, metadata=player.client.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(err.value)[1].get("field") == field
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await player.client.scores.SubmitScore(submit(player, "no-such-board", 1), metadata=player.client.metadata)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_batch_submit_reports_per_item(stack: Stack) -> None:
    admin, server = await new_admin(stack), await new_game_server(stack)
    board = await make_board(admin, min_score=0, max_score=1000)
    players = [str(uuid.uuid4()) for _ in range(5)]
    requests = [submit(server, board, 10 * i, user_id=p) for i, p in enumerate(players)]
    requests[2].score = 5000  # out of bounds: only this one fails
    # Valid protobuf, but PostgreSQL text cannot hold it: refused alone, not with its batch.
    requests[3].metadata["note"] = "a\x00b"
    reply = await server.client.scores.BatchSubmitScores(
        scores_pb2.BatchSubmitScoresRequest(requests=requests), metadata=server.client.metadata
    )
    codes = [r.code for r in reply.results]
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert codes == [0, 0, invalid, invalid, 0]
    assert reply.results[2].reason == "SCORE_OUT_OF_BOUNDS"
    assert "requests[3].metadata" in reply.results[3].message
    assert all(r.response.applied for i, r in enumerate(reply.results) if i not in (2, 3))
    assert await history_rows(stack, board) == 3
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await server.client.scores.BatchSubmitScores(
            scores_pb2.BatchSubmitScoresRequest(requests=[submit(server, board, 1, user_id=players[0])] * 1001),
            metadata=server.client.metadata,
        )
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    player = await new_player(stack)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await player.client.scores.BatchSubmitScores(
            scores_pb2.BatchSubmitScoresRequest(requests=[submit(player, board, 1)]), metadata=player.client.metadata
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_history_pages_filters_and_privacy(stack: Stack) -> None:
    admin, player, other = await new_admin(stack), await new_player(stack), await new_player(stack)
    board, board2 = await make_board(admin), await make_board(admin)
    for score in range(5):
        await player.client.scores.SubmitScore(submit(player, board, score), metadata=player.client.metadata)
    await player.client.scores.SubmitScore(submit(player, board2, 99), metadata=player.client.metadata)

    seen: list[int] = []
    token = ""
    while True:
        page = await player.client.scores.ListScoreHistory(
            scores_pb2.ListScoreHistoryRequest(leaderboard_id=board, page_size=2, page_token=token),
            metadata=player.client.metadata,
        )
        seen += [s.score for s in page.submissions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [4, 3, 2, 1, 0]
    everything = await player.client.scores.ListScoreHistory(
        scores_pb2.ListScoreHistoryRequest(), metadata=player.client.metadata
    )
    assert everything.submissions[0].score == 99 and len(everything.submissions) == 6
    future = scores_pb2.ListScoreHistoryRequest()
    future.start_time.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    empty = await player.client.scores.ListScoreHistory(future, metadata=player.client.metadata)
    assert list(empty.submissions) == []

    with pytest.raises(grpc.aio.AioRpcError) as private:
        await other.client.scores.ListScoreHistory(
            scores_pb2.ListScoreHistoryRequest(user_id=player.user_id), metadata=other.client.metadata
        )
    assert private.value.code() == grpc.StatusCode.PERMISSION_DENIED
    as_admin = await admin.client.scores.ListScoreHistory(
        scores_pb2.ListScoreHistoryRequest(user_id=player.user_id, leaderboard_id=board2),
        metadata=admin.client.metadata,
    )
    assert [s.score for s in as_admin.submissions] == [99]
    for bad in (
        scores_pb2.ListScoreHistoryRequest(page_size=-1),
        scores_pb2.ListScoreHistoryRequest(page_token="zz"),
        # PostgreSQL text cannot hold NUL: a filter with one is refused, not an INTERNAL error.
        scores_pb2.ListScoreHistoryRequest(leaderboard_id="a\x00b"),
        scores_pb2.ListScoreHistoryRequest(user_id="a\x00b"),
        # Players' ids are UUIDs (the history stores them as uuid): anything else is refused.
        scores_pb2.ListScoreHistoryRequest(user_id="not-a-player"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.client.scores.ListScoreHistory(bad, metadata=admin.client.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    server = await new_game_server(stack)
    with pytest.raises(grpc.aio.AioRpcError) as stream_err:
        async for _ in server.client.scores.StreamScoreEvents(
            scores_pb2.StreamScoreEventsRequest(leaderboard_id="a\x00b"), metadata=server.client.metadata
        ):
            pass
    assert stream_err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_ranking_down_acknowledged_then_applied_none_lost_or_doubled(stack: Stack) -> None:
    admin, server = await new_admin(stack), await new_game_server(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_SUM)
    players = [str(uuid.uuid4()) for _ in range(10)]
    await server.client.scores.SubmitScore(
        submit(server, board, 1, user_id=players[0]), metadata=server.client.metadata
    )

    await stack.services["ranking"].stop(grace=0.1)
    try:
        requests = [submit(server, board, 2, user_id=p) for p in players for _ in range(3)]
        replies = await asyncio.gather(
            *(server.client.scores.SubmitScore(r, metadata=server.client.metadata) for r in requests)
        )
        assert all(not r.applied for r in replies)
        assert await history_rows(stack, board) == 31
    finally:
        stack.services["ranking"] = await start_service("ranking", stack.settings)

    deadline = asyncio.get_running_loop().time() + 30
    while True:
        totals = {}
        for p in players:
            try:
                totals[p] = (await rank_of(admin, board, p)).entry.score
            except grpc.aio.AioRpcError:
                totals[p] = 0
        if totals == {p: 6 + (1 if p == players[0] else 0) for p in players}:
            break
        assert asyncio.get_running_loop().time() < deadline, totals
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)  # a relay pass more must not double anything
    assert (await rank_of(admin, board, players[0])).entry.score == 7
    # A retry still gets the first answer: no rank (AIP-155), and nothing applied twice.
    again = await server.client.scores.SubmitScore(requests[0], metadata=server.client.metadata)
    assert again == replies[0]
    assert (await rank_of(admin, board, players[0])).entry.score == 7


async def pending_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT CAST(unnest(event_ids) AS text) FROM scores.outbox"))).all()
    return {r[0] for r in rows}


class CountingLink(RankingLink):
    """The real link, counting what it delivers."""

    delivered: list[str]

    async def apply(self, events: Sequence[Submission]) -> list[ranking_pb2.ApplyScoresResult]:
        results = await super().apply(events)
        self.delivered.extend(e.id for e in events)
        return results


def relay_items(boards: Sequence[str], users: Sequence[str]) -> list[Submission]:
    """Submissions as if just committed: the stack's own relay (2 s minimum age) leaves
    them to a test's relay (minimum age 0) for a moment."""
    created = datetime.now(UTC)
    items = []
    for board, user in zip(boards, users, strict=True):
        item = Submission(
            caller_id="relay-test",
            request_id=str(uuid.uuid4()),
            leaderboard_id=board,
            user_id=user,
            score=1,
            metadata={},
            submitted_by="relay-test",
            display_name="",
            body_hash=b"x",
            id=uuid7(),
        )
        item.created_at = created
        items.append(item)
    return items


async def test_several_relays_deliver_each_event_once(stack: Stack) -> None:
    admin = await new_admin(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_SUM)
    settings = stack.settings
    engine = create_engine(settings.postgres_url, pool_size=4)
    store = ScoreStore(engine)
    users = [str(uuid.uuid4()) for _ in range(6)]
    items = relay_items([board] * 60, [users[i % 6] for i in range(60)])
    await store.insert_batch(items)  # committed, never applied: only relays can deliver them

    client = Client.from_settings(settings)
    delivered: list[str] = []
    relays = []
    for _ in range(3):
        link = CountingLink(client, ServiceToken(client, "scores", settings.internal_secret))
        link.delivered = delivered
        relays.append(OutboxRelay(ScoreStore(engine), link, min_age_seconds=0.0, batch_size=7))
    ours = {i.id for i in items}
    # The stack's own relay may take some of them too: that is one more relay at once.
    for _ in range(100):
        await asyncio.gather(*(r.run_once() for r in relays))
        if not ours & await pending_ids(engine):
            break
    mine = [d for d in delivered if d in ours]
    assert len(mine) == len(set(mine))  # no event delivered twice
    assert not ours & await pending_ids(engine)  # and none left behind
    for user in users:
        assert (await rank_of(admin, board, user)).entry.score == 10
    await client.close()
    await store.close()
    await engine.dispose()


class FlakyLink(RankingLink):
    """The real link, but a call with only `fail_board`'s events fails as if ranking went away."""

    fail_board: str

    async def apply(self, events: Sequence[Submission]) -> list[ranking_pb2.ApplyScoresResult]:
        if self.fail_board and all(e.leaderboard_id == self.fail_board for e in events):
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "ranking went away", None
            )
        return await super().apply(events)


async def test_relay_parks_refused_events_and_keeps_the_rest_of_a_batch(stack: Stack) -> None:
    # One outbox row per batch. Refused for good: the events of a deleted board are parked
    # together, an event ranking rejects (a score past ±2^53) alone, the rest is applied;
    # after a transient failure, the row keeps only the events not yet delivered.
    admin = await new_admin(stack)
    board, later = await make_board(admin), await make_board(admin)
    gone = f"scores-gone-{uuid.uuid4().hex[:8]}"
    users = [str(uuid.uuid4()) for _ in range(5)]
    items = relay_items([board, gone, board, later, later], users)
    items[2].score = MAX_SAFE_SCORE + 1  # stored (bigint), never ranked
    engine = create_engine(stack.settings.postgres_url, pool_size=2)
    store = ScoreStore(engine)
    written = await store.insert_batch(items)
    client = Client.from_settings(stack.settings)
    link = FlakyLink(client, ServiceToken(client, "scores", stack.settings.internal_secret))
    link.fail_board = later
    relay = OutboxRelay(store, link, min_age_seconds=0.0, batch_size=10_000)
    try:
        for _ in range(50):  # the stack's own relay may hold the lock for a moment
            try:
                await relay.run_once()
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                break
            await asyncio.sleep(0.05)
        async with engine.connect() as conn:
            left = (
                await conn.execute(
                    text("SELECT CAST(event_ids AS text[]), attempts FROM scores.outbox WHERE id = :id"),
                    {"id": written.batch_id},
                )
            ).one()
            parked: dict[str, str] = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT CAST(event_id AS text), last_error FROM scores.parked_events "
                            "WHERE event_id = ANY(CAST(:ids AS uuid[]))"
                        ),
                        {"ids": [i.id for i in items]},
                    )
                ).all()
            )
        assert list(left[0]) == [items[3].id, items[4].id] and left[1] == 1
        assert set(parked) == {items[1].id, items[2].id}
        assert parked[items[1].id].startswith("NOT_FOUND") and parked[items[2].id].startswith("INVALID_ARGUMENT")
        assert (await rank_of(admin, board, users[0])).entry.score == 1
        link.fail_board = ""
        for _ in range(50):
            if not {i.id for i in items} & await pending_ids(engine):
                break
            await relay.run_once()
            await asyncio.sleep(0.05)
        assert not {i.id for i in items} & await pending_ids(engine)
        for user in users[3:]:
            assert (await rank_of(admin, later, user)).entry.score == 1  # each applied once
    finally:
        await client.close()
        await store.close()
        await engine.dispose()


async def test_per_player_rate_limit(stack: Stack) -> None:
    admin, player = await new_admin(stack), await new_player(stack)
    board = await make_board(admin)
    settings = dataclasses.replace(stack.settings, submit_rate_per_second=1.0, scores_port=free_port())
    limited = await start_service("scores", settings)
    client = Client.from_settings(settings, token=player.token)
    try:
        await client.scores.SubmitScore(submit(player, board, 1), metadata=client.metadata)
        await client.scores.SubmitScore(submit(player, board, 2), metadata=client.metadata)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.scores.SubmitScore(submit(player, board, 3), metadata=client.metadata)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reason, meta = error_details(err.value)
        assert reason == "RATE_LIMITED" and int(meta["retry_after_ms"]) > 0
    finally:
        await client.close()
        await limited.stop(grace=0.1)


class SlowLink(RankingLink):
    """The real link, slowed down so a batch is still in flight when traffic stops."""

    async def apply(self, events: Sequence[Submission]) -> list[ranking_pb2.ApplyScoresResult]:
        await asyncio.sleep(0.3)
        return await super().apply(events)


def own_submissions(board: str, count: int) -> list[Submission]:
    """Validated submissions of `count` new players, each for itself."""
    items = []
    for i in range(count):
        user = str(uuid.uuid4())
        items.append(
            Submission(
                caller_id=user,
                request_id=str(uuid.uuid4()),
                leaderboard_id=board,
                user_id=user,
                score=i,
                metadata={},
                submitted_by=user,
                display_name="",
                body_hash=body_hash(board, user, i, {}),
            )
        )
    return items


@asynccontextmanager
async def own_batcher(
    stack: Stack,
    link_type: type[RankingLink],
    max_batch: int,
    linger_seconds: float = 0.001,
    *,
    min_interval_seconds: float = 0.0,
    load: CpuLoad | None = None,
) -> AsyncIterator[tuple[SubmitBatcher, AsyncEngine]]:
    """A batcher of the test's own, on the stack's database and ranking."""
    settings = stack.settings
    engine = create_engine(settings.postgres_url, pool_size=2)
    client = Client.from_settings(settings)
    link = link_type(client, ServiceToken(client, "scores", settings.internal_secret))
    store = ScoreStore(engine)
    batcher = SubmitBatcher(
        store,
        link,
        linger_seconds=linger_seconds,
        max_batch=max_batch,
        min_interval_seconds=min_interval_seconds,
        load=load,
    )
    await batcher.start()
    try:
        yield batcher, engine
    finally:
        await batcher.stop()
        await client.close()
        await store.close()
        await engine.dispose()


async def test_a_lingering_batch_leaves_when_the_one_in_flight_is_done(stack: Stack) -> None:
    # Submissions that arrive while a batch is in flight wait for it to finish and then
    # leave together, however long the linger: under load the batch grows with the wait,
    # and the linger is only a bound.
    admin = await new_admin(stack)
    board = await make_board(admin)
    first, *later = own_submissions(board, 6)
    async with own_batcher(stack, SlowLink, max_batch=100, linger_seconds=30.0) as (batcher, engine):
        in_flight = asyncio.create_task(batcher.submit_many([first]))
        await asyncio.sleep(0.05)  # the first batch left at once (nothing was in flight)
        started = asyncio.get_running_loop().time()
        replies = await asyncio.gather(*(batcher.submit_many([item]) for item in later))
        waited = asyncio.get_running_loop().time() - started
        assert all(isinstance(r, scores_pb2.SubmitScoreResponse) and r.applied for (r,) in replies)
        assert isinstance((await in_flight)[0], scores_pb2.SubmitScoreResponse)
        assert waited < 5.0  # ~0.3 s for the first batch's apply and ~0.3 s for its own
        async with engine.connect() as conn:
            batches = (
                await conn.execute(
                    text(
                        "SELECT DISTINCT batch_id FROM scores.submission_requests "
                        "WHERE request_id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": [i.request_id for i in later]},
                )
            ).all()
        assert len(batches) == 1


class SetPressure(CpuLoad):
    """A load whose pressure the test sets (CpuLoad's own measure: test_scores_cpu_load)."""

    def __init__(self, pressure: float) -> None:
        super().__init__()
        self.set_to = pressure

    def pressure(self) -> float:
        return self.set_to


@pytest.mark.parametrize(("pressure", "shortest", "longest"), [(1.0, 1.95, 3.0), (0.5, 0.95, 1.6), (0.0, 0.25, 0.9)])
async def test_batches_leave_no_sooner_than_the_minimum_interval_scaled_by_cpu_pressure(
    stack: Stack, pressure: float, shortest: float, longest: float
) -> None:
    # CPU-bound, a batch whose predecessor is done still waits until the minimum interval,
    # scaled by the pressure, since that one left has passed (so it grows); without
    # pressure it leaves as soon as its predecessor is done.
    admin = await new_admin(stack)
    board = await make_board(admin)
    first, *later = own_submissions(board, 4)
    async with own_batcher(
        stack, SlowLink, max_batch=100, linger_seconds=30.0, min_interval_seconds=2.0, load=SetPressure(pressure)
    ) as (batcher, _):
        in_flight = asyncio.create_task(batcher.submit_many([first]))
        await asyncio.sleep(0.05)  # the first batch left at once (none had left before it)
        replies = await asyncio.gather(*(batcher.submit_many([item]) for item in later))
        (head,) = await in_flight
        assert isinstance(head, scores_pb2.SubmitScoreResponse)
        answers = [reply for (reply,) in replies if isinstance(reply, scores_pb2.SubmitScoreResponse)]
        assert len(answers) == len(later) and all(a.applied for a in answers)
        # They left together (creation times are per batch, in wall-clock milliseconds):
        # when the first batch was done (~0.3 s), or the scaled interval after it left.
        assert len({a.submission.create_time.ToMilliseconds() for a in answers}) == 1
        gap = (
            answers[0].submission.create_time.ToDatetime() - head.submission.create_time.ToDatetime()
        ).total_seconds()
        assert shortest <= gap < longest


async def test_first_answers_are_stored_even_when_traffic_stops(stack: Stack) -> None:
    # A batch's bookkeeping (its stored answers, its applied outbox rows) rides on the
    # next batch; with no next batch it must still be written within a moment.
    admin = await new_admin(stack)
    board = await make_board(admin)
    items = own_submissions(board, 5)
    query = text(
        "SELECT count(*) FROM scores.submission_requests r JOIN scores.batch_answers a ON a.batch_id = r.batch_id "
        "WHERE r.request_id = ANY(CAST(:ids AS uuid[]))"
    )
    async with own_batcher(stack, SlowLink, max_batch=100) as (batcher, engine):
        replies = await batcher.submit_many(items)
        assert all(isinstance(r, scores_pb2.SubmitScoreResponse) and r.applied for r in replies)
        answered = 0
        for _ in range(40):
            async with engine.connect() as conn:
                answered = (await conn.execute(query, {"ids": [i.request_id for i in items]})).scalar() or 0
            if answered == len(items):
                break
            await asyncio.sleep(0.05)
        assert answered == len(items)


async def test_a_retry_racing_the_first_answer_waits_for_it(stack: Stack) -> None:
    # The same requests again while their first batch is still being applied, on this
    # replica and on another one: every retry gets the first answer (AIP-155), not
    # applied=false because the first answer was not stored yet.
    admin = await new_admin(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_BEST)
    items = own_submissions(board, 5)
    async with (
        own_batcher(stack, SlowLink, max_batch=100) as (batcher, _),
        own_batcher(stack, RankingLink, max_batch=100) as (other, _),
    ):
        first = asyncio.create_task(batcher.submit_many(items))
        await asyncio.sleep(0.15)  # stored, still being applied (SlowLink)
        assert not first.done()
        # Copies, as separate calls would build (a batch stamps its items' created_at).
        here, there = await asyncio.gather(
            batcher.submit_many([dataclasses.replace(i) for i in items]),
            other.submit_many([dataclasses.replace(i) for i in items]),
        )
        answers = await first
    assert all(isinstance(a, scores_pb2.SubmitScoreResponse) and a.applied for a in answers)
    assert here == answers
    assert there == answers


async def test_batches_over_rankings_per_call_limit_are_applied(stack: Stack) -> None:
    # A micro-batch may hold more than ranking's 1,000 events per ApplyScores: ingest
    # must split the call, not leave the whole batch to the relay.
    admin = await new_admin(stack)
    board = await make_board(admin)
    async with own_batcher(stack, RankingLink, max_batch=5000) as (batcher, _):
        replies = await batcher.submit_many(own_submissions(board, 1500))  # queued at once: one batch
        assert all(isinstance(r, scores_pb2.SubmitScoreResponse) and r.applied for r in replies)


async def test_a_call_is_never_split_between_batches(stack: Stack) -> None:
    # Batches take whole calls (one future per call): calls that do not fit wait for the
    # next batch, and a call larger than the cap goes alone. A batch shares one timestamp.
    admin = await new_admin(stack)
    board = await make_board(admin)
    async with own_batcher(stack, RankingLink, max_batch=100) as (batcher, _):
        calls = [own_submissions(board, n) for n in (60, 60, 150, 60)]
        replies = await asyncio.gather(*(batcher.submit_many(items) for items in calls))
    for items, answers in zip(calls, replies, strict=True):
        assert len(answers) == len(items)
        assert all(isinstance(r, scores_pb2.SubmitScoreResponse) and r.applied for r in answers)
        responses = [r for r in answers if isinstance(r, scores_pb2.SubmitScoreResponse)]
        assert [r.submission.request_id for r in responses] == [i.request_id for i in items]
        assert len({r.submission.create_time.ToMilliseconds() for r in responses}) == 1


class CountingLeaderboardReads(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Counts the GetLeaderboard calls made over a real channel (and changes nothing)."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith(b"/GetLeaderboard"):  # bytes in grpc.aio
            self.calls += 1
        return await continuation(details, request)


async def test_board_rules_are_read_once_however_many_ask(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under load a TTL running out made every submission in the meantime call
    # GetLeaderboard. Concurrent callers share one call; past the TTL they get the cached
    # rules at once while one call refreshes them.
    monkeypatch.setattr(ranking_link, "RULES_TTL_SECONDS", 0.2)
    admin = await new_admin(stack)
    board = await make_board(admin, max_score=100)
    settings = stack.settings
    client = Client.from_settings(settings)
    counter = CountingLeaderboardReads()
    client._channels["ranking"] = grpc.aio.insecure_channel(
        settings.target("ranking"),
        options=channel_options(client.timeout_seconds),
        interceptors=[counter],  # type: ignore[list-item]
    )
    link = RankingLink(client, ServiceToken(client, "scores", settings.internal_secret))
    try:
        first = await asyncio.gather(*(link.rules(board) for _ in range(50)))
        assert {r.max_score if r else None for r in first} == {100}
        assert counter.calls == 1
        await admin.client.ranking.UpdateLeaderboard(
            ranking_pb2.UpdateLeaderboardRequest(
                leaderboard=common_pb2.Leaderboard(id=board, max_score=50),
                update_mask=field_mask_pb2.FieldMask(paths=["max_score"]),
            ),
            metadata=admin.client.metadata,
        )
        await asyncio.sleep(0.3)  # past the TTL
        stale = await asyncio.gather(*(link.rules(board) for _ in range(50)))
        assert {r.max_score if r else None for r in stale} == {100}  # answered from the cache
        refreshed = None
        for _ in range(100):  # the one refresh lands
            refreshed = await link.rules(board)
            if refreshed is not None and refreshed.max_score == 50:
                break
            await asyncio.sleep(0.01)
        assert refreshed is not None and refreshed.max_score == 50
        assert counter.calls == 2
        # A board that does not exist is asked about once too, and never served stale.
        missing = await asyncio.gather(*(link.rules("no-such-board") for _ in range(20)))
        assert missing == [None] * 20
        assert counter.calls == 3
    finally:
        await client.close()


def mixed_submissions() -> list[Submission]:
    """Runs of submissions that share board, submitter and time, and some that do not."""
    start = datetime(2031, 5, 4, 3, 2, 1, 123000, tzinfo=UTC)
    items = []
    for i in range(60):
        item = Submission(
            caller_id="c",
            request_id=str(uuid.uuid4()),
            leaderboard_id=f"board-{i // 20}",
            user_id=str(uuid.uuid4()),
            score=i - 30,
            metadata={"level": str(i)} if i % 7 == 0 else {},
            submitted_by="server-a" if i % 11 else "server-b",
            display_name="Ann" if i % 3 == 0 else "",
            body_hash=b"",
            id=uuid7(),
        )
        item.created_at = start + timedelta(milliseconds=i // 10)
        items.append(item)
    return items


def test_apply_requests_and_answers_built_from_shared_fields_match_field_by_field() -> None:
    # add_events and the batch's answers parse the fields a batch shares from bytes made
    # once; whatever the runs of shared fields, the messages must equal ones built plainly.
    items = mixed_submissions()
    request = ranking_pb2.ApplyScoresRequest()
    ranking_link.add_events(request.events, items)
    assert list(request.events) == [
        ranking_pb2.ScoreEvent(
            event_id=s.id,
            leaderboard_id=s.leaderboard_id,
            user_id=s.user_id,
            score=s.score,
            achieved_at=ranking_link.timestamp_of(s.created_at),
            display_name=s.display_name,
        )
        for s in items
    ]
    writer = SubmissionWriter()
    for s in items:
        written = common_pb2.ScoreSubmission()
        writer.fill(written, s)
        assert written == to_proto(s)
