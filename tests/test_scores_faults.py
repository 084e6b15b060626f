"""ScoreService when PostgreSQL goes away or hangs, through a proxy that cuts or stalls
the real server's connections: callers get UNAVAILABLE in bounded time, the service
keeps serving, and once the database is back every acknowledged submission is there
once, and a retry of one whose outcome was unknown stores it at most once."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AbstractAsyncContextManager

import grpc
import psycopg
import pytest

from leaderboard.client import Client, error_details
from leaderboard.runtime.db import create_engine
from leaderboard.runtime.errors import Unavailable
from leaderboard.v1 import common_pb2, scores_pb2
from services.scores.score_store import ScoreStore
from tests.accounts import Account, new_admin, new_game_server
from tests.conftest import Stack
from tests.faults import FaultyLink, service_behind, via
from tests.test_scores import history_rows, make_board, rank_of, submit
from tests.test_scores_store import make


def scores_behind(stack: Stack, token: str) -> AbstractAsyncContextManager[tuple[FaultyLink, Client]]:
    """A ScoreService of the test's own whose PostgreSQL connections pass a FaultyLink."""
    return service_behind(stack.settings, "scores", "postgres_url", token, db_timeout_seconds=2.0)


async def expect_unavailable(client: Client, request: scores_pb2.SubmitScoreRequest) -> float:
    """Seconds until the submission failed; it must fail UNAVAILABLE, not hang."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.scores.SubmitScore(request, metadata=client.metadata, timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert error_details(err.value)[0] == "DATABASE_UNAVAILABLE"
    return time.monotonic() - started


async def submit_until_accepted(
    client: Client, request: scores_pb2.SubmitScoreRequest
) -> scores_pb2.SubmitScoreResponse:
    """What a client does with UNAVAILABLE: retry the same request (same request_id)."""
    for _ in range(40):
        try:
            return await client.scores.SubmitScore(request, metadata=client.metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            await asyncio.sleep(0.25)
    raise AssertionError("never accepted after the database came back")


async def players_board(stack: Stack) -> tuple[Account, Account, str]:
    admin, server = await new_admin(stack), await new_game_server(stack)
    return admin, server, await make_board(admin, policy=common_pb2.UPDATE_POLICY_SUM)


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_database_outage_gives_unavailable_and_loses_nothing(stack: Stack, fault: str) -> None:
    admin, server, board = await players_board(stack)
    users = [str(uuid.uuid4()) for _ in range(3)]
    async with scores_behind(stack, server.token) as (link, client):
        before = await client.scores.SubmitScore(submit(server, board, 5, user_id=users[0]), metadata=client.metadata)
        assert before.applied

        link.cut() if fault == "cut" else link.stall()
        unknown = submit(server, board, 7, user_id=users[1])  # stored or not: nobody can tell
        waited = await expect_unavailable(client, unknown)
        assert waited < 10
        # Still serving: the next submission gets its answer too.
        await expect_unavailable(client, submit(server, board, 1, user_id=users[2]))

        link.heal()
        after = await submit_until_accepted(client, submit(server, board, 9, user_id=users[2]))
        assert after.applied
        retried = await submit_until_accepted(client, unknown)  # the same request_id again
        assert retried.submission.score == 7

    assert await history_rows(stack, board) == 3  # 5, 7 once, 9; the failed 1 never stored
    assert (await rank_of(admin, board, users[1])).entry.score == 7  # applied once


async def test_relay_claims_give_up_on_a_hung_database(stack: Stack) -> None:
    # The outbox relay holds a transaction across its ApplyScores call: each of its
    # statements is bounded too, so a hung database cannot pin the relay (and its lock).
    link = FaultyLink(stack.settings.postgres_url)
    await link.start()
    engine = create_engine(via(stack.settings.postgres_url, link), pool_size=1)
    store = ScoreStore(engine, timeout_seconds=1.0)
    try:
        claim, _ = await store.claim_pending(0.0, 10)
        if claim is not None:
            await store.abandon_claim(claim)
        link.stall()
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await store.claim_pending(0.0, 10)
        assert time.monotonic() - started < 5
        link.heal()
        claim, _ = await store.claim_pending(0.0, 10)
        if claim is not None:
            await store.abandon_claim(claim)
    finally:
        await engine.dispose()
        await link.stop()


async def test_kept_batch_connections_go_together_when_the_database_does(stack: Stack) -> None:
    # After a restart or a failover every kept batch connection is dead: the first batch
    # that finds out drops them all, so one batch fails and the next connects afresh
    # (instead of each dead connection failing a batch of its own).
    link = FaultyLink(stack.settings.postgres_url)
    await link.start()
    engine = create_engine(via(stack.settings.postgres_url, link), pool_size=1)
    store = ScoreStore(engine, timeout_seconds=2.0)
    board = f"faults-{uuid.uuid4().hex[:8]}"
    try:
        # Three batches at once: three connections kept.
        await asyncio.gather(*(store.insert_batch([make(board, f"u{i}", i)]) for i in range(3)))
        link.cut()  # every connection through the link is gone ...
        link.heal()  # ... and new ones pass
        with pytest.raises((psycopg.OperationalError, Unavailable)):
            await store.insert_batch([make(board, "u3", 3)])
        for i in range(4, 7):
            written = await store.insert_batch([make(board, f"u{i}", i)])
            assert written.batch_id is not None
    finally:
        await store.close()
        await engine.dispose()
        await link.stop()
