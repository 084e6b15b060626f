"""Delivers committed but unapplied submissions to ranking.

The outbox holds one row per micro-batch: its events still to deliver, in
order. One relay works at a time across all replicas (a transaction-scoped
advisory lock), in outbox order, so each leaderboard sees its events in commit
order.
Ranking dedups by event id, so a redelivery after a crash has no second
effect. An event ranking rejects for good (e.g. its leaderboard was deleted)
is parked with the error instead of blocking the ones behind it; a batch
delivered in part keeps only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from services.scores.ranking_link import RankingLink
from services.scores.score_store import Parked, PendingEvent, ScoreStore, Undelivered
from services.scores.submissions import Submission

log = logging.getLogger("leaderboard.scores.relay")

PERMANENT = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}


def _as_submission(event: PendingEvent) -> Submission:
    return Submission(
        caller_id="",
        request_id="",
        leaderboard_id=event.leaderboard_id,
        user_id=event.user_id,
        score=event.score,
        metadata={},
        submitted_by="",
        display_name=event.display_name,
        body_hash=b"",
        id=event.event_id,
        created_at=event.created_at,
    )


class OutboxRelay:
    def __init__(
        self,
        store: ScoreStore,
        ranking: RankingLink,
        *,
        interval_seconds: float = 0.5,
        min_age_seconds: float = 2.0,
        batch_size: int = 500,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._ranking = ranking
        self._interval = interval_seconds
        self._min_age = min_age_seconds
        self._batch = batch_size
        self._max_backoff = max_backoff_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        delay = self._interval
        while True:
            await asyncio.sleep(delay)
            try:
                delivered = await self.run_once()
                delay = 0.0 if delivered >= self._batch else self._interval
            except Exception as exc:
                delay = min(self._max_backoff, max(self._interval, delay * 2))
                log.warning("outbox relay failed (%s); retrying in %.1fs", exc, delay)

    async def run_once(self) -> int:
        """Deliver the oldest pending batches; returns how many events were applied."""
        claim, batches = await self._store.claim_pending(self._min_age, self._batch)
        if claim is None:
            return 0
        if not batches:
            await self._store.abandon_claim(claim)
            return 0
        events = [(batch.attempts, event) for batch in batches for event in batch.events]
        done: set[str] = set()
        parked: list[Parked] = []
        error: Exception | None = None
        reason = ""
        try:
            try:
                await self._ranking.apply([_as_submission(e) for _, e in events])
                done = {e.event_id for _, e in events}
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in PERMANENT:
                    error, reason = exc, f"{exc.code().name}: {exc.details()}"
                else:
                    # Find the culprit(s): apply one by one, in order.
                    for attempts, event in events:
                        try:
                            await self._ranking.apply([_as_submission(event)])
                            done.add(event.event_id)
                        except grpc.aio.AioRpcError as one:
                            if one.code() in PERMANENT:
                                parked.append(Parked(event, attempts + 1, f"{one.code().name}: {one.details()}"))
                                log.error("parked event %s: %s", event.event_id, one.details())
                            else:
                                error, reason = one, f"{one.code().name}: {one.details()}"
                                break
        except BaseException:
            # Cancelled too (service stopping): give the connection back, roll back.
            await asyncio.shield(self._store.abandon_claim(claim))
            raise
        settled = done | {p.event.event_id for p in parked}
        delivered: list[int] = []
        undelivered: list[Undelivered] = []
        for batch in batches:
            left = [e.event_id for e in batch.events if e.event_id not in settled]
            if left:
                undelivered.append(Undelivered(batch.batch_id, left, reason))
            else:
                delivered.append(batch.batch_id)
        await asyncio.shield(
            self._store.finish_claim(claim, delivered=delivered, undelivered=undelivered, parked=parked)
        )
        if error is not None:
            raise error
        if done:
            log.info("relay applied %d events", len(done))
        return len(done)
