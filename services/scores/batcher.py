"""Micro-batching of submissions: concurrent SubmitScore calls share one
PostgreSQL statement (so one commit), one ApplyScores call and so one Redis
round trip. Throughput grows with concurrency instead of with commits.

A batch is acknowledged only after its statement committed. If ranking
fails, the answer says `applied=false` and the outbox relay applies it later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import grpc
import psycopg
from sqlalchemy.exc import DBAPIError

from leaderboard.runtime.errors import AlreadyExists, DomainError, Unavailable
from leaderboard.runtime.ids import uuid7s
from leaderboard.v1 import common_pb2, ranking_pb2, scores_pb2
from services.scores import stored_answers
from services.scores.cpu_load import CpuLoad
from services.scores.ranking_link import RankingLink, timestamp_of
from services.scores.score_store import ExistingRequest, ScoreStore
from services.scores.submissions import Submission

log = logging.getLogger("leaderboard.scores.batcher")

IDLE_FLUSH_SECONDS = 0.2
# A retry that finds its request stored by another replica, whose first answer is not
# stored yet (it follows the batch's statement by a moment), polls for it until this long
# after the submission was created; past that it is answered without a rank.
REPLAY_WAIT_SECONDS = 2.0
REPLAY_POLL_SECONDS = 0.05


def fill_submission(target: common_pb2.ScoreSubmission, s: Submission) -> None:
    """Write a submission into a message in place (no intermediate message to copy)."""
    _fill_shared(target, s)
    _fill_own(target, s)


def _fill_shared(target: common_pb2.ScoreSubmission, s: Submission) -> None:
    """The fields a batch's submissions mostly share (SubmissionWriter serializes them once)."""
    target.leaderboard_id = s.leaderboard_id
    target.submitted_by = s.submitted_by
    if s.created_at is not None:
        target.create_time.CopyFrom(timestamp_of(s.created_at))


def _fill_own(target: common_pb2.ScoreSubmission, s: Submission) -> None:
    """The fields no two submissions share."""
    target.id = s.id
    target.request_id = s.request_id
    target.user_id = s.user_id
    target.score = s.score
    if s.metadata:
        target.metadata.update(s.metadata)


class SubmissionWriter:
    """fill_submission for a batch's answers: the fields its submissions mostly share
    (board, submitter, time) are serialized once and parsed into each answer, which
    costs less than setting them one by one, the Timestamp most (0.7 against 1.1 µs
    an answer); then each takes its own id, request id, player, score and metadata."""

    __slots__ = ("_like", "_shared")

    def __init__(self) -> None:
        self._like: Submission | None = None
        self._shared = b""

    def fill(self, target: common_pb2.ScoreSubmission, s: Submission) -> None:
        like = self._like
        if (
            like is None
            or s.created_at is not like.created_at
            or s.leaderboard_id != like.leaderboard_id
            or s.submitted_by != like.submitted_by
        ):
            shared = common_pb2.ScoreSubmission()
            _fill_shared(shared, s)
            self._like, self._shared = s, shared.SerializeToString()
        target.MergeFromString(self._shared)
        _fill_own(target, s)


def to_proto(s: Submission) -> common_pb2.ScoreSubmission:
    message = common_pb2.ScoreSubmission()
    fill_submission(message, s)
    return message


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> datetime:
    """Now, truncated to the millisecond: history and ranking must agree exactly."""
    return _EPOCH + timedelta(milliseconds=time.time_ns() // 1_000_000)


Outcome = scores_pb2.SubmitScoreResponse | BaseException


class _Call:
    """The submissions of one RPC and the one future its caller awaits: a
    1,000-item BatchSubmitScores costs one future, not 1,000 (and no gather)."""

    __slots__ = ("future", "items", "outcomes", "targets", "unsettled")

    def __init__(
        self,
        items: Sequence[Submission],
        future: asyncio.Future[list[Outcome]],
        targets: Sequence[scores_pb2.SubmitScoreResponse] | None,
    ) -> None:
        self.items = items
        self.future = future
        self.targets = targets
        self.outcomes: list[Outcome | None] = [None] * len(items)
        self.unsettled = len(items)

    def settle(self, index: int, outcome: Outcome) -> None:
        if self.outcomes[index] is not None:
            return
        self.outcomes[index] = outcome
        self.unsettled -= 1
        if self.unsettled == 0 and not self.future.done():
            self.future.set_result(cast(list[Outcome], self.outcomes))

    def fail_unsettled(self, error: BaseException) -> None:
        for index, outcome in enumerate(self.outcomes):
            if outcome is None:
                self.settle(index, error)


class _Batch:
    """A batch's new submissions (the first of each caller + request_id), in order, with
    the call and the index in it that each answers: parallel lists rather than an object
    per submission, which the collector walked again and again while the batch lasted."""

    __slots__ = ("calls", "indexes", "items")

    def __init__(self) -> None:
        self.items: list[Submission] = []
        self.calls: list[_Call] = []
        self.indexes: list[int] = []

    def add(self, call: _Call, index: int) -> None:
        self.items.append(call.items[index])
        self.calls.append(call)
        self.indexes.append(index)

    def answer(self, position: int, outcome: Outcome) -> None:
        self.calls[position].settle(self.indexes[position], outcome)

    def outcome(self, position: int) -> Outcome | None:
        return self.calls[position].outcomes[self.indexes[position]]


class SubmitBatcher:
    def __init__(
        self,
        store: ScoreStore,
        ranking: RankingLink,
        *,
        linger_seconds: float,
        max_batch: int,
        max_in_flight: int = 16,
        min_interval_seconds: float = 0.0,
        load: CpuLoad | None = None,
    ) -> None:
        self._store = store
        self._ranking = ranking
        self._linger = linger_seconds
        self._min_interval = min_interval_seconds
        self._load = load or CpuLoad()
        self._last_left = 0.0  # the loop's time when the last batch left
        self._loop: asyncio.AbstractEventLoop  # set by start(): submissions need the worker
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Call] = asyncio.Queue()
        # A call taken off the queue that did not fit the batch being filled.
        self._carry: _Call | None = None
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._busy = 0
        # Set while no batch is in flight: a lingering batch leaves as soon as the ones
        # before it are done, so its wait adapts to the load instead of always taking the linger.
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        # Bookkeeping deferred to the next batch's statement (saves a round trip each):
        # outbox rows of delivered batches, and batches' packed first answers.
        self._delivered: list[int] = []
        self._answers: list[tuple[int, bytes]] = []
        # This process's batches from their commit until a later statement stored their
        # packed first answers (None: the batch broke off before answering): a retry
        # racing a first answer here gets it from this, not from PostgreSQL.
        self._unstored: dict[int, asyncio.Future[bytes | None]] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._worker = asyncio.create_task(self._run(), name="submit-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._flush_bookkeeping()

    async def submit(self, item: Submission) -> scores_pb2.SubmitScoreResponse:
        (outcome,) = await self.submit_many((item,))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def submit_many(
        self, items: Sequence[Submission], targets: Sequence[scores_pb2.SubmitScoreResponse] | None = None
    ) -> list[Outcome]:
        """One outcome per item, in order: its response or its error. With `targets`
        (empty messages, one per item), a new submission's response is written into its
        target, which is then its outcome: a batch reply needs no copy of each answer."""
        if not items:
            return []
        # The loop kept at start: asyncio.get_running_loop() costs a getpid() system call
        # on Python 3.11, once per submission here.
        future: asyncio.Future[list[Outcome]] = self._loop.create_future()
        self._queue.put_nowait(_Call(items, future, targets))
        return await future

    async def _run(self) -> None:
        while True:
            # Poll while batches are in flight too: the bookkeeping they leave behind
            # must be written even if no further submission comes to carry it.
            idle = IDLE_FLUSH_SECONDS if self._busy or self._has_bookkeeping() else None
            first, self._carry = self._carry, None
            if first is None:
                try:
                    first = await asyncio.wait_for(self._queue.get(), idle)
                except TimeoutError:
                    await self._flush_bookkeeping_safely()
                    continue
            batch = [first]
            size = self._drain(batch, len(first.items))
            if size < self._max_batch and self._busy and self._carry is None:
                # Others are in flight: let this batch fill up until they are done, for
                # at most the linger.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), self._linger)
                size = self._drain(batch, size)
            if self._min_interval and size < self._max_batch and self._carry is None:
                # CPU-bound, each batch's fixed cost (a statement, an ApplyScores call) is
                # what limits throughput: batches grow by leaving less often, the more so the
                # busier the process. Only so much: in a closed loop of callers the wait is
                # latency, and latency is what bounds their rate when the core is not full.
                interval = self._min_interval * self._load.pressure()
                wait = self._last_left + interval - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    size = self._drain(batch, size)
            await self._in_flight.acquire()
            if size < self._max_batch and self._carry is None:
                # What queued while every slot was busy joins too: under load batches
                # grow with the wait instead of each waiting for a slot of its own.
                size = self._drain(batch, size)
            self._busy += 1
            self._last_left = self._loop.time()
            self._idle.clear()
            task = asyncio.create_task(self._process(batch))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._busy -= 1
        if not self._busy:
            self._idle.set()
        self._in_flight.release()

    def _drain(self, batch: list[_Call], size: int) -> int:
        """Add queued calls while they fit (a call is never split); returns the item count."""
        while size < self._max_batch and self._carry is None:
            try:
                call = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if size + len(call.items) > self._max_batch:
                self._carry = call  # first in the next batch
                break
            batch.append(call)
            size += len(call.items)
        return size

    def _has_bookkeeping(self) -> bool:
        return bool(self._delivered or self._answers)

    def _take_bookkeeping(self) -> tuple[list[int], list[tuple[int, bytes]]]:
        delivered, answers = self._delivered, self._answers
        self._delivered, self._answers = [], []
        return delivered, answers

    def _restore_bookkeeping(self, delivered: list[int], answers: list[tuple[int, bytes]]) -> None:
        self._delivered.extend(delivered)
        self._answers.extend(answers)

    async def _flush_bookkeeping(self) -> None:
        delivered, answers = self._take_bookkeeping()
        if not delivered and not answers:
            return
        try:
            await self._store.flush_bookkeeping(delivered, answers)
        except Exception:
            self._restore_bookkeeping(delivered, answers)
            raise
        self._forget_stored(answers)

    def _forget_stored(self, answers: list[tuple[int, bytes]]) -> None:
        for batch_id, _ in answers:
            self._unstored.pop(batch_id, None)

    async def _flush_bookkeeping_safely(self) -> None:
        try:
            await self._flush_bookkeeping()
        except Exception:
            log.warning("deferred outbox/response writes failed; will retry", exc_info=True)

    async def _process(self, batch: list[_Call]) -> None:
        try:
            await self._process_batch(batch)
        except Exception as exc:  # never leave a caller hanging
            error: DomainError
            if isinstance(exc, DomainError):
                log.warning("batch failed: %s", exc.message)
                error = exc
            elif isinstance(exc, (psycopg.Error, DBAPIError, OSError)):
                log.warning("batch failed: %s", exc)
                error = Unavailable("the score database is unavailable; retry", reason="DATABASE_UNAVAILABLE")
            else:
                log.exception("batch failed")
                error = Unavailable("score ingest failed; retry")
            for call in batch:
                call.fail_unsettled(error)

    async def _process_batch(self, batch: list[_Call]) -> None:
        # Same caller + request_id inside one batch: the first is the leader, the others
        # (call, index, leader's position) follow it.
        leaders: dict[str, int] = {}
        new = _Batch()
        followers: list[tuple[_Call, int, int]] = []
        for call in batch:
            if call.future.done():
                continue  # caller went away (cancelled)
            for index, item in enumerate(call.items):
                # request_id is a canonical UUID (36 characters): the key is unambiguous.
                position = leaders.setdefault(item.request_id + item.caller_id, len(new.items))
                if position == len(new.items):
                    new.add(call, index)
                else:
                    followers.append((call, index, position))
        items = new.items
        created_ms = time.time_ns() // 1_000_000
        created = _EPOCH + timedelta(milliseconds=created_ms)
        for item, submission_id in zip(items, uuid7s(len(items), created_ms), strict=True):
            item.id = submission_id
            item.created_at = created
        delivered, answers = self._take_bookkeeping()
        started = time.perf_counter()
        try:
            written = await self._store.insert_batch(items, delivered_batches=delivered, answers=answers)
        except Exception:
            self._restore_bookkeeping(delivered, answers)
            raise
        self._forget_stored(answers)
        stored = time.perf_counter()
        old = written.already_stored
        if written.batch_id is not None and len(old) < len(items):
            await self._apply_and_answer(written.batch_id, new, old)
        if old:  # after the new ones: a retry may wait for a first answer
            await self._answer_duplicates(new, [p for p, item in enumerate(items) if item.id in old])
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch of %d: store %.1f ms, apply+answer %.1f ms, %d in flight",
                len(items),
                1000 * (stored - started),
                1000 * (time.perf_counter() - stored),
                self._busy,
            )
        for call, index, leader in followers:
            self._answer_follower(call, index, new, leader)

    async def _apply_and_answer(self, batch_id: int, new: _Batch, old: frozenset[str]) -> None:
        """Apply the batch's new submissions and answer them; `new.items` in batch order
        (position i + 1 in the stored batch)."""
        unstored: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._unstored[batch_id] = unstored
        packed: bytes | None = None
        try:
            packed = await self._apply_and_answer_new(batch_id, new, old)
        finally:
            unstored.set_result(packed)
            if packed is None:  # broke off: nothing will be stored
                del self._unstored[batch_id]

    async def _apply_and_answer_new(self, batch_id: int, new: _Batch, old: frozenset[str]) -> bytes:
        """Returns the batch's packed first answers, as kept for replays."""
        items = new.items
        fresh = [s for s in items if s.id not in old] if old else items
        results: dict[str, ranking_pb2.ApplyScoresResult] = {}
        try:
            results = {r.event_id: r for r in await self._ranking.apply(fresh)}
        except grpc.aio.AioRpcError as exc:
            # Durable already: the relay will deliver it; answer with rank unknown.
            log.warning("ApplyScores failed (%s); the outbox relay will retry", exc.code().name)
        answers: list[bytes | None] = [None] * len(items)
        answered = 0
        calls, indexes = new.calls, new.indexes
        # Methods bound once: this loop runs for every submission.
        found_for, fill = results.get, SubmissionWriter().fill
        for position, item in enumerate(items):
            if old and item.id in old:
                continue
            found = found_for(item.id)
            # `deferred`: ranking queued it behind a running rebuild; delivered, not yet ranked.
            applied = found is not None and not found.deferred
            # The message to answer in: the caller's target when it gave one.
            call, index = calls[position], indexes[position]
            if call.targets is None:
                response = scores_pb2.SubmitScoreResponse(applied=applied)
            else:
                response = call.targets[index]
                response.applied = applied
            if found is not None:
                if applied:
                    response.entry.CopyFrom(found.entry)
                    response.improved = found.improved
                # Stored without the submission, which its history row already holds
                # (a replay joins them): a third of the bytes to encode and write.
                answers[position] = response.SerializeToString()
                answered += 1
            fill(response.submission, item)
            call.settle(index, response)
        if answered == len(fresh):
            self._delivered.append(batch_id)  # else the relay delivers the batch (ranking dedups)
        # Kept even when none has a rank (ranking was down): a replay then knows at once
        # that the first answer had none, on any replica, instead of waiting to see.
        packed = stored_answers.pack(answers)
        self._answers.append((batch_id, packed))
        return packed

    async def _answer_duplicates(self, new: _Batch, positions: list[int]) -> None:
        """Answer the submissions at `positions` of `new`, whose requests were stored before."""
        existing = await self._existing_with_first_answers([new.items[p].key for p in positions])
        for position in positions:
            item = new.items[position]
            found = existing.get(item.key)
            if found is None:  # the row vanished between statements: treat as transient
                new.answer(position, Unavailable("retry the submission"))
            elif found.body_hash != item.body_hash:
                new.answer(position, _reused(item))
            else:
                unstored = self._unstored.get(found.batch_id) if found.batch_id is not None else None
                if not found.answers_stored and unstored is not None and found.batch_position is not None:
                    packed = await unstored  # this process is answering it right now
                    if packed is not None:
                        found = dataclasses.replace(
                            found, response=stored_answers.answer_at(packed, found.batch_position)
                        )
                try:
                    new.answer(position, _replay(found))
                except DomainError as exc:
                    new.answer(position, exc)

    async def _existing_with_first_answers(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], ExistingRequest]:
        """The stored requests of `keys`; those whose first answer another replica is
        still to store are read again until it is there or REPLAY_WAIT_SECONDS passed."""
        existing = await self._store.existing_requests(keys)
        started = time.monotonic()
        while time.monotonic() - started < REPLAY_WAIT_SECONDS:
            recent = datetime.now(UTC) - timedelta(seconds=REPLAY_WAIT_SECONDS)
            waiting = [
                key
                for key, found in existing.items()
                if not found.answers_stored
                and found.batch_id not in self._unstored
                and found.stored is not None
                and found.stored.created_at is not None
                and found.stored.created_at > recent
            ]
            if not waiting:
                break
            await asyncio.sleep(REPLAY_POLL_SECONDS)
            existing.update(await self._store.existing_requests(waiting))
        return existing

    @staticmethod
    def _answer_follower(call: _Call, index: int, new: _Batch, leader: int) -> None:
        item = call.items[index]
        if item.body_hash != new.items[leader].body_hash:
            call.settle(index, _reused(item))
            return
        outcome = new.outcome(leader)
        # Leaders are answered first, so None would mean the leader's batch broke off
        # before answering it: the follower then gets what the leader would, a retry.
        call.settle(index, outcome if outcome is not None else Unavailable("retry the submission"))


def _reused(item: Submission) -> AlreadyExists:
    return AlreadyExists(
        "request_id was already used with a different request body",
        reason="REQUEST_ID_REUSED",
        metadata={"request_id": item.request_id},
    )


def _replay(found: ExistingRequest) -> scores_pb2.SubmitScoreResponse:
    """The first answer of an already stored request (AIP-155)."""
    stored = found.stored
    response = scores_pb2.SubmitScoreResponse.FromString(found.response) if found.response is not None else None
    if response is not None and response.HasField("submission"):
        return response  # stored whole (rows written before responses were stored without it)
    if stored is None:
        raise Unavailable("retry the submission")
    if response is None:  # acknowledged before ranking had it: the first answer had no rank
        response = scores_pb2.SubmitScoreResponse(applied=False)
    fill_submission(response.submission, stored)
    return response
