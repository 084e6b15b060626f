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
from dataclasses import dataclass, field

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


def _why(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


@dataclass(slots=True)
class _Outcome:
    """What one relay pass did with its events."""

    done: set[str] = field(default_factory=set)
    parked: list[Parked] = field(default_factory=list)
    error: Exception | None = None
    reason: str = ""

    def fail(self, exc: grpc.aio.AioRpcError) -> None:
        self.error, self.reason = exc, _why(exc)

    def park(self, items: list[tuple[int, PendingEvent]], exc: grpc.aio.AioRpcError) -> None:
        self.parked.extend(Parked(event, attempts + 1, _why(exc)) for attempts, event in items)
        log.error("parked %d event(s) of leaderboard %s: %s", len(items), items[0][1].leaderboard_id, exc.details())


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

    async def _deliver(self, events: list[tuple[int, PendingEvent]], outcome: _Outcome) -> None:
        """Apply events (attempts so far, event) in order; fills `outcome`. Stops at the first
        transient failure: what follows stays for a later pass."""
        refused = await self._apply(events, outcome)
        if refused is None or outcome.error is not None:
            return
        # Refused for good: find the culprits per leaderboard (each keeps its order), so
        # a deleted board's events are parked in one call, not one call each.
        boards: dict[str, list[tuple[int, PendingEvent]]] = {}
        for item in events:
            boards.setdefault(item[1].leaderboard_id, []).append(item)
        for group in boards.values():
            refused = await self._apply(group, outcome)
            if outcome.error is not None:
                return
            if refused is None:
                continue
            if refused.code() == grpc.StatusCode.NOT_FOUND:  # the board itself is gone
                outcome.park(group, refused)
                continue
            for item in group:  # another refusal: one event at a time
                one = await self._apply([item], outcome)
                if outcome.error is not None:
                    return
                if one is not None:
                    outcome.park([item], one)

    async def _apply(self, items: list[tuple[int, PendingEvent]], outcome: _Outcome) -> grpc.aio.AioRpcError | None:
        """Apply items in one call: None when applied (recorded in `outcome`), the error when
        ranking refused them for good; a transient failure is recorded as outcome.error."""
        try:
            await self._ranking.apply([_as_submission(e) for _, e in items])
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                return exc
            outcome.fail(exc)
            return None
        outcome.done.update(e.event_id for _, e in items)
        return None

    async def run_once(self) -> int:
        """Deliver the oldest pending batches; returns how many events were applied."""
        claim, batches = await self._store.claim_pending(self._min_age, self._batch)
        if claim is None:
            return 0
        if not batches:
            await self._store.abandon_claim(claim)
            return 0
        events = [(batch.attempts, event) for batch in batches for event in batch.events]
        outcome = _Outcome()
        try:
            await self._deliver(events, outcome)
        except BaseException:
            # Cancelled too (service stopping): give the connection back, roll back.
            await asyncio.shield(self._store.abandon_claim(claim))
            raise
        done, parked, error, reason = outcome.done, outcome.parked, outcome.error, outcome.reason
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
