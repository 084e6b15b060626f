"""ScoreService RPC handlers: validate, authorize, hand to the batcher/store, map to protos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from leaderboard.runtime import paging
from leaderboard.runtime.context import Principal, current_principal
from leaderboard.runtime.errors import DomainError, InvalidArgument, PermissionDenied, ResourceExhausted
from leaderboard.runtime.ids import canonical_uuid
from leaderboard.v1 import scores_pb2, scores_pb2_grpc
from services.scores.batcher import SubmitBatcher, to_proto
from services.scores.ranking_link import RankingLink, add_events
from services.scores.rate_limit import RateLimiter
from services.scores.score_store import ScoreStore
from services.scores.submissions import (
    MAX_BATCH,
    BoardRules,
    Submission,
    body_hash,
    check_no_nul,
    check_score,
    parse_request_id,
    resolve_player,
    validate_metadata,
)

HISTORY_DEFAULT_PAGE = 50
HISTORY_MAX_PAGE = 1000
STREAM_CHUNK = 1000

Context = grpc.aio.ServicerContext[Any, Any]


def _time(ts: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if present else None


class ScoreServicer(scores_pb2_grpc.ScoreServiceServicer):
    def __init__(self, store: ScoreStore, ranking: RankingLink, batcher: SubmitBatcher, limiter: RateLimiter) -> None:
        self._store = store
        self._ranking = ranking
        self._batcher = batcher
        self._limiter = limiter

    async def _validate(self, request: scores_pb2.SubmitScoreRequest, principal: Principal) -> Submission:
        rules = await self._ranking.rules(request.leaderboard_id) if request.leaderboard_id else None
        return self._check(request, principal, rules)

    def _check(
        self,
        request: scores_pb2.SubmitScoreRequest,
        principal: Principal,
        rules: BoardRules | None,
        index: int | None = None,
    ) -> Submission:
        """Validate one submission against its board's rules (no I/O: batches look rules up
        once). `index`: its place in a batch, which errors name (requests[index].field)."""
        # Each field read once: a protobuf attribute read costs about as much as a check.
        leaderboard_id, score = request.leaderboard_id, request.score
        try:
            if not leaderboard_id:
                raise InvalidArgument("leaderboard_id", "required")
            request_id = parse_request_id(request.request_id)
            user_id = resolve_player(principal, request.user_id)
            metadata = validate_metadata(request.metadata)
            check_score(rules, leaderboard_id, score, principal)
        except InvalidArgument as exc:
            if index is not None:
                raise exc.within(f"requests[{index}]") from None
            raise
        wait = self._limiter.try_acquire(user_id)
        if wait:
            raise ResourceExhausted("too many submissions for this player", retry_after=wait)
        caller = principal.user_id
        # Positional, in Submission's field order: keywords cost twice as much (8,100 against
        # 4,000 instructions per call), once for every item of every batch.
        return Submission(
            caller,  # caller_id
            request_id,
            leaderboard_id,
            user_id,
            score,
            metadata,
            caller,  # submitted_by
            # A player's own name comes with its token; for a game server's submission it is unknown here.
            principal.display_name if user_id == caller else "",  # display_name
            body_hash(leaderboard_id, user_id, score, metadata),
        )

    async def SubmitScore(
        self, request: scores_pb2.SubmitScoreRequest, context: Context
    ) -> scores_pb2.SubmitScoreResponse:
        item = await self._validate(request, current_principal())
        return await self._batcher.submit(item)

    async def BatchSubmitScores(
        self, request: scores_pb2.BatchSubmitScoresRequest, context: Context
    ) -> scores_pb2.BatchSubmitScoresResponse:
        if not request.requests:
            raise InvalidArgument("requests", "at least one submission")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument("requests", f"at most {MAX_BATCH} submissions per call")
        principal = current_principal()
        # A game server's batch names a few boards: look each up once, not once per item.
        rules: dict[str, BoardRules | DomainError | None] = {}
        for board in {item.leaderboard_id for item in request.requests if item.leaderboard_id}:
            try:
                rules[board] = await self._ranking.rules(board)
            except DomainError as exc:
                rules[board] = exc
        response = scores_pb2.BatchSubmitScoresResponse()
        # The valid items and their results, as parallel lists (no pair per item to collect).
        submissions: list[Submission] = []
        accepted: list[scores_pb2.BatchSubmitScoresResult] = []
        for index, item in enumerate(request.requests):
            result = response.results.add()
            try:
                board_rules = rules.get(item.leaderboard_id)
                if isinstance(board_rules, DomainError):
                    raise board_rules
                submissions.append(self._check(item, principal, board_rules, index))
                accepted.append(result)
            except DomainError as exc:
                _fail(result, exc)
        targets = [result.response for result in accepted]
        outcomes = await self._batcher.submit_many(submissions, targets)
        for result, target, outcome in zip(accepted, targets, outcomes, strict=True):
            if isinstance(outcome, scores_pb2.SubmitScoreResponse):
                if outcome is not target:  # a replay's or a same-batch duplicate's answer
                    target.CopyFrom(outcome)
            elif isinstance(outcome, DomainError):
                _fail(result, outcome)
            else:
                raise outcome
        return response

    async def ListScoreHistory(
        self, request: scores_pb2.ListScoreHistoryRequest, context: Context
    ) -> scores_pb2.ListScoreHistoryResponse:
        principal = current_principal()
        user_id = canonical_uuid(request.user_id or principal.user_id)
        if user_id is None:
            raise InvalidArgument("user_id", "must be a user id (UUID)")
        leaderboard_id = check_no_nul("leaderboard_id", request.leaderboard_id)
        if user_id != principal.user_id and not (principal.is_admin or principal.is_server):
            raise PermissionDenied("players may only read their own history", reason="HISTORY_OF_OTHER_USER")
        size = paging.page_size(request.page_size, default=HISTORY_DEFAULT_PAGE, maximum=HISTORY_MAX_PAGE)
        start = _time(request.start_time, request.HasField("start_time"))
        end = _time(request.end_time, request.HasField("end_time"))
        if start and end and start >= end:
            raise InvalidArgument("end_time", "must be after start_time")
        filters = (user_id, leaderboard_id, str(start), str(end))
        cursor = paging.decode_token(request.page_token, filters)
        after = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(cursor["t"]), str(cursor["i"]))
            except (KeyError, ValueError):
                raise InvalidArgument("page_token", "malformed page token") from None
        rows = await self._store.history(
            user_id=user_id,
            leaderboard_id=leaderboard_id,
            start=start,
            end=end,
            after=after,
            limit=size + 1,
        )
        response = scores_pb2.ListScoreHistoryResponse(submissions=[to_proto(r) for r in rows[:size]])
        if len(rows) > size:
            last = rows[size - 1]
            assert last.created_at is not None
            response.next_page_token = paging.encode_token({"t": last.created_at.isoformat(), "i": last.id}, filters)
        return response

    async def StreamScoreEvents(
        self, request: scores_pb2.StreamScoreEventsRequest, context: Context
    ) -> AsyncIterator[scores_pb2.StreamScoreEventsResponse]:
        leaderboard_id = check_no_nul("leaderboard_id", request.leaderboard_id)
        if not leaderboard_id:
            raise InvalidArgument("leaderboard_id", "required")
        after: tuple[datetime, str] | None = None
        while True:
            rows = await self._store.board_events(leaderboard_id, after, STREAM_CHUNK)
            if rows:
                chunk = scores_pb2.StreamScoreEventsResponse()
                add_events(chunk.events, rows)
                yield chunk
            if len(rows) < STREAM_CHUNK:
                return
            last = rows[-1]
            assert last.created_at is not None
            after = (last.created_at, last.id)
            await asyncio.sleep(0)


def _fail(result: scores_pb2.BatchSubmitScoresResult, exc: DomainError) -> None:
    result.code = exc.code.value[0]
    result.message = exc.message
    result.reason = exc.reason
