"""Delivers committed but unapplied submissions to ranking.

One relay works at a time across all replicas (a transaction-scoped advisory
lock), in outbox order, so each leaderboard sees its events in commit order.
Ranking dedups by event id, so a redelivery after a crash has no second
effect. An event ranking rejects for good (e.g. its leaderboard was deleted)
is parked with the error instead of blocking the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from services.scores.ranking_link import RankingLink
from services.scores.score_store import PendingEvent, ScoreStore
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
        """Deliver one batch of pending events; returns how many were applied."""
        claim, events = await self._store.claim_pending(self._min_age, self._batch)
        if claim is None:
            return 0
        if not events:
            await self._store.abandon_claim(claim)
            return 0
        applied: list[int] = []
        failed: list[tuple[int, str]] = []
        parked: list[tuple[int, str]] = []
        error: Exception | None = None
        try:
            await self._ranking.apply([_as_submission(e) for e in events])
            applied = [e.outbox_id for e in events]
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in PERMANENT:
                failed = [(e.outbox_id, f"{exc.code().name}: {exc.details()}") for e in events]
                error = exc
            else:
                # Find the culprit(s): apply one by one, in order.
                for index, event in enumerate(events):
                    try:
                        await self._ranking.apply([_as_submission(event)])
                        applied.append(event.outbox_id)
                    except grpc.aio.AioRpcError as one:
                        if one.code() in PERMANENT:
                            parked.append((event.outbox_id, f"{one.code().name}: {one.details()}"))
                            log.error("parked event %s: %s", event.event_id, one.details())
                        else:
                            failed.extend((e.outbox_id, one.code().name) for e in events[index:])
                            error = one
                            break
        except BaseException:
            # Cancelled too (service stopping): give the connection back, roll back.
            await asyncio.shield(self._store.abandon_claim(claim))
            raise
        await asyncio.shield(self._store.finish_claim(claim, applied=applied, failed=failed, parked=parked))
        if error is not None:
            raise error
        if applied:
            log.info("relay applied %d events", len(applied))
        return len(applied)
