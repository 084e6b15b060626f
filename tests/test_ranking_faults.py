"""RankingService when Redis goes away or hangs, through a proxy that cuts or stalls the
real server's connections: reads and applies fail UNAVAILABLE (REDIS_UNAVAILABLE) in
bounded time, the service keeps answering, and it works again once Redis is back."""

from __future__ import annotations

import time

import grpc
import pytest

from leaderboard.client import Client, error_details
from leaderboard.v1 import ranking_pb2
from tests.accounts import new_admin, new_game_server, new_player
from tests.conftest import Stack
from tests.faults import service_behind
from tests.test_scores import make_board, submit


async def rank(client: Client, board: str, user_id: str) -> ranking_pb2.GetUserRankResponse:
    return await client.ranking.GetUserRank(
        ranking_pb2.GetUserRankRequest(leaderboard_id=board, user_id=user_id), metadata=client.metadata, timeout=30
    )


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_redis_outage_gives_unavailable_then_recovers(stack: Stack, fault: str) -> None:
    admin, server, player = await new_admin(stack), await new_game_server(stack), await new_player(stack)
    board = await make_board(admin)
    await server.client.scores.SubmitScore(
        submit(server, board, 42, user_id=player.user_id), metadata=server.client.metadata
    )

    async with service_behind(stack.settings, "ranking", "redis_url", player.token, redis_timeout_seconds=1.0) as (
        link,
        client,
    ):
        assert (await rank(client, board, player.user_id)).entry.score == 42

        link.cut() if fault == "cut" else link.stall()
        for _ in range(2):  # the call that meets the fault, and the next one
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await rank(client, board, player.user_id)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert error_details(err.value)[0] == "REDIS_UNAVAILABLE"
            assert time.monotonic() - started < 10

        link.heal()
        for _ in range(20):
            try:
                assert (await rank(client, board, player.user_id)).entry.score == 42
                break
            except grpc.aio.AioRpcError as exc:  # the first call may meet a dropped connection
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
        else:
            raise AssertionError("ranking never recovered after Redis came back")
