"""Ingest killed with SIGKILL under load, again and again: nothing acknowledged is lost
and nothing is applied twice. A real `leaderboard serve scores` process takes
submissions from many concurrent callers; it is killed mid-load and restarted; calls
that failed (outcome unknown) are retried with their request_id, as a client would.
At the end every request is in the history once, and each player's sum on a SUM board
equals the number of their requests (a lost apply or a double one would show)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

from leaderboard.cli.up import service_env, wait_serving
from leaderboard.client import SERVICE_NAMES, Client
from leaderboard.runtime.config import Settings
from leaderboard.runtime.embedded import free_port
from leaderboard.v1 import common_pb2, scores_pb2
from tests.accounts import new_admin, new_game_server
from tests.conftest import Stack
from tests.test_scores import history_rows, make_board, rank_of, submit


class Ingest:
    """`leaderboard serve scores` as a process of its own, to kill."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "leaderboard.cli.main",
                "serve",
                "scores",
                env=service_env(self.settings),
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
            )
        await wait_serving(self.settings.target("scores"), SERVICE_NAMES["scores"], time.monotonic() + 30)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


async def crash_cycles(stack: Stack, tmp_path: Path, *, rounds: int, load_seconds: float) -> None:
    admin, server = await new_admin(stack), await new_game_server(stack)
    board = await make_board(admin, policy=common_pb2.UPDATE_POLICY_SUM)
    players = [str(uuid.uuid4()) for _ in range(40)]
    settings = dataclasses.replace(stack.settings, scores_port=free_port(), metrics_port_base=0)
    ingest = Ingest(settings, tmp_path / "scores.log")
    client = Client.from_settings(settings, token=server.token)
    acknowledged: dict[str, str] = {}  # request_id -> user
    unknown: dict[str, scores_pb2.SubmitScoreRequest] = {}

    async def submitter(rng: random.Random, until: float) -> None:
        while time.monotonic() < until:
            request = submit(server, board, 1, user_id=rng.choice(players))
            try:
                await client.scores.SubmitScore(request, metadata=client.metadata, timeout=10)
                acknowledged[request.request_id] = request.user_id
            except grpc.aio.AioRpcError:
                unknown[request.request_id] = request  # killed mid-call: stored or not
                await asyncio.sleep(0.05)

    try:
        for round_ in range(rounds):
            await ingest.start()
            until = time.monotonic() + load_seconds
            load = [asyncio.create_task(submitter(random.Random(round_ * 100 + i), until)) for i in range(24)]
            # Killed while calls are in flight: somewhere in a batch's store, apply or answer.
            await asyncio.sleep(load_seconds * random.uniform(0.5, 0.9))
            await ingest.kill()
            await asyncio.gather(*load)
        await ingest.start()
        for request_id, request in list(unknown.items()):
            for _ in range(50):
                try:
                    await client.scores.SubmitScore(request, metadata=client.metadata, timeout=10)
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"request {request_id} never accepted")
            acknowledged[request_id] = request.user_id
        assert unknown, "no call was cut by a kill: the test did not test anything"

        expected = {p: 0 for p in players}
        for user in acknowledged.values():
            expected[user] += 1
        expected = {p: n for p, n in expected.items() if n}
        deadline = time.monotonic() + 60
        while True:  # the outbox relay delivers what the killed processes did not apply
            totals = {p: (await rank_of(admin, board, p)).entry.score for p in expected}
            if totals == expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert totals == expected
        assert await history_rows(stack, board) == len(acknowledged)
        print(f"{len(acknowledged)} submissions, {len(unknown)} cut by a kill and retried")
    finally:
        await ingest.kill()
        await client.close()


@pytest.mark.slow
async def test_killed_ingest_loses_nothing_and_applies_nothing_twice(stack: Stack, tmp_path: Path) -> None:
    await crash_cycles(stack, tmp_path, rounds=2, load_seconds=2.0)


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_soak_killed_ingest_again_and_again(stack: Stack, tmp_path: Path) -> None:
    await crash_cycles(stack, tmp_path, rounds=25, load_seconds=4.0)
