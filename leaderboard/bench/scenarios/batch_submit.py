"""`batch-submit`: BatchSubmitScores of 1,000 submissions per call; figures in submissions/s."""

from __future__ import annotations

from typing import ClassVar

import grpc

from leaderboard.bench.scenarios.submit import ServiceCall, SubmitScenario
from leaderboard.bench.seed import BATCH, Population
from leaderboard.runtime.ids import random_uuid4s
from leaderboard.v1 import scores_pb2

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class BatchSubmitCall(ServiceCall):
    method = "ScoreService.BatchSubmitScores"

    def __init__(self, targets: dict[str, str], token: str, board_id: str, players: int, population_base: int) -> None:
        super().__init__(targets, token)
        self.board_id = board_id
        self.population = Population(players, population_base)
        # Requests of calls not in flight, refilled rather than rebuilt, and players' ids
        # formatted once: the load generator shares the cores with what it measures.
        self._idle: list[scores_pb2.BatchSubmitScoresRequest] = []
        self._user_ids: dict[int, str] = {}

    def _request(self) -> scores_pb2.BatchSubmitScoresRequest:
        if self._idle:
            request = self._idle.pop()
        else:
            request = scores_pb2.BatchSubmitScoresRequest()
            for _ in range(BATCH):
                request.requests.add(leaderboard_id=self.board_id)
        rng, population, user_ids = self.rng, self.population, self._user_ids
        size = population.size
        for item, request_id in zip(request.requests, random_uuid4s(BATCH, rng), strict=True):
            item.score = int(rng.random() * 1_000_000_000)
            item.request_id = request_id  # unique: every item is a new submission, never a replay
            index = int(rng.random() * size)
            user_id = user_ids.get(index)
            if user_id is None:
                user_id = user_ids[index] = population.user_id(index)
            item.user_id = user_id
        return request

    async def call(self) -> int:
        request = self._request()
        try:
            reply = await self.client.scores.BatchSubmitScores(request, metadata=self.metadata)
        finally:
            self._idle.append(request)
        ok = 0
        for result in reply.results:
            if result.code == 0 and result.response.applied:
                ok += 1
            elif result.code == 0:
                # Durable but not ranked yet (the relay will): not "end to end", so not counted.
                self.item_errors["NOT_APPLIED"] += 1
            else:
                self.item_errors[_CODE_NAMES.get(result.code, str(result.code))] += 1
        return ok


class BatchSubmitScenario(SubmitScenario):
    name = "batch-submit"
    baseline = "redis"
    default_concurrency: ClassVar[tuple[int, ...]] = (4,)
    concurrency_under_all: ClassVar[tuple[int, ...] | None] = None
    workload: ClassVar[str] = f"{__name__}:BatchSubmitCall"
    unit: ClassVar[str] = "submissions"
