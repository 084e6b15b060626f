"""RankingService handlers: validate, call the catalog or the ranking domain, map to protos.

Authorization happens before these run (leaderboard/runtime/policy.py); a
missing leaderboard is NOT_FOUND only after that, as AIP-193 asks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from leaderboard.runtime import paging
from leaderboard.runtime.context import current_principal
from leaderboard.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented
from leaderboard.v1 import common_pb2, ranking_pb2, ranking_pb2_grpc
from services.ranking.catalog import (
    GLOBAL_ID,
    Board,
    CatalogCache,
    Policy,
    SortOrder,
    apply_update,
    parse_windows,
    validate_board,
    validate_id,
)
from services.ranking.catalog_store import CatalogStore
from services.ranking.page_tokens import CatalogToken, mismatch
from services.ranking.ranking import Entry, Ranking, ScoreEvent
from services.ranking.windows import Window

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_CATALOG_PAGE = 50
MAX_CATALOG_PAGE = 1000


def _ms(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def add_entries(field: Any, entries: Sequence[Entry]) -> None:
    """Append entries to a repeated LeaderboardEntry field, filling them in place (building
    messages first and passing them in copies each one: many times slower)."""
    add = field.add
    for e in entries:
        msg = add(user_id=e.user_id, display_name=e.display_name, score=e.score, rank=e.rank, percentile=e.percentile)
        ts = msg.achieved_at
        ts.seconds, ts.nanos = e.achieved_ms // 1000, e.achieved_ms % 1000 * 1_000_000


def fill_entry(msg: common_pb2.LeaderboardEntry, e: Entry) -> None:
    msg.user_id, msg.display_name, msg.score, msg.rank, msg.percentile = (
        e.user_id,
        e.display_name,
        e.score,
        e.rank,
        e.percentile,
    )
    ts = msg.achieved_at
    ts.seconds, ts.nanos = e.achieved_ms // 1000, e.achieved_ms % 1000 * 1_000_000


def board_proto(b: Board) -> common_pb2.Leaderboard:
    msg = common_pb2.Leaderboard(
        id=b.id,
        game_id=b.game_id,
        display_name=b.display_name,
        sort_order=int(b.sort_order),  # type: ignore[arg-type]
        update_policy=int(b.policy),  # type: ignore[arg-type]
        authoritative=b.authoritative,
        windows=[int(w) for w in b.windows],  # type: ignore[misc]
        global_weight=b.global_weight,
        retention_periods=b.retention_periods,
    )
    if b.min_score is not None:
        msg.min_score = b.min_score
    if b.max_score is not None:
        msg.max_score = b.max_score
    if b.create_time is not None:
        msg.create_time.FromDatetime(b.create_time)
    if b.update_time is not None:
        msg.update_time.FromDatetime(b.update_time)
    return msg


def board_from_proto(msg: common_pb2.Leaderboard, base: Board | None) -> Board:
    """A definition from a request; unset enums default (create) or stay as they are (update)."""
    try:
        order = SortOrder(msg.sort_order) if msg.sort_order else (base.sort_order if base else SortOrder.DESCENDING)
    except ValueError:
        raise InvalidArgument("leaderboard.sort_order", "unknown sort order") from None
    try:
        policy = Policy(msg.update_policy) if msg.update_policy else (base.policy if base else Policy.BEST)
    except ValueError:
        raise InvalidArgument("leaderboard.update_policy", "unknown update policy") from None
    return Board(
        id=msg.id,
        game_id=msg.game_id,
        display_name=msg.display_name,
        sort_order=order,
        policy=policy,
        min_score=msg.min_score if msg.HasField("min_score") else None,
        max_score=msg.max_score if msg.HasField("max_score") else None,
        authoritative=msg.authoritative,
        windows=parse_windows(msg.windows, "leaderboard.windows"),
        global_weight=msg.global_weight,
        retention_periods=msg.retention_periods,
    )


def _window(value: int) -> Window:
    if value == 0:
        return Window.ALL_TIME
    try:
        return Window(value)
    except ValueError:
        raise InvalidArgument("window", "unknown window") from None


def _board_id(value: str) -> str:
    return validate_id(value, "leaderboard_id")


def _user(value: str) -> str:
    return value or current_principal().user_id


def _period(request: Any) -> int | None:
    """The request's past period (ms), None for the current one."""
    return _ms(request.period_time) if request.HasField("period_time") else None


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(self, catalog: CatalogCache, catalog_store: CatalogStore, ranking: Ranking) -> None:
        self._catalog = catalog
        self._catalog_store = catalog_store
        self._ranking = ranking

    # --- catalog -------------------------------------------------------------------------------

    async def CreateLeaderboard(
        self, request: ranking_pb2.CreateLeaderboardRequest, context: Context
    ) -> ranking_pb2.CreateLeaderboardResponse:
        if not request.HasField("leaderboard"):
            raise InvalidArgument("leaderboard", "is required")
        board = validate_board(board_from_proto(request.leaderboard, None))
        created = await self._catalog_store.create(board)
        self._catalog.put(created)
        await self._ranking.board_created(created)
        return ranking_pb2.CreateLeaderboardResponse(leaderboard=board_proto(created))

    async def GetLeaderboard(
        self, request: ranking_pb2.GetLeaderboardRequest, context: Context
    ) -> ranking_pb2.GetLeaderboardResponse:
        board = await self._catalog.get(_board_id(request.leaderboard_id))
        return ranking_pb2.GetLeaderboardResponse(leaderboard=board_proto(board))

    async def ListLeaderboards(
        self, request: ranking_pb2.ListLeaderboardsRequest, context: Context
    ) -> ranking_pb2.ListLeaderboardsResponse:
        size = paging.page_size(request.page_size, default=DEFAULT_CATALOG_PAGE, maximum=MAX_CATALOG_PAGE)
        after = ""
        if request.page_token:
            token = CatalogToken.decode(request.page_token)
            if token.game_id != request.game_id:
                raise mismatch()
            after = token.after_id
        boards = await self._catalog_store.list_page(game_id=request.game_id, after_id=after, limit=size + 1)
        next_token = CatalogToken(boards[size - 1].id, request.game_id).encode() if len(boards) > size else ""
        return ranking_pb2.ListLeaderboardsResponse(
            leaderboards=[board_proto(b) for b in boards[:size]], next_page_token=next_token
        )

    async def UpdateLeaderboard(
        self, request: ranking_pb2.UpdateLeaderboardRequest, context: Context
    ) -> ranking_pb2.UpdateLeaderboardResponse:
        if not request.HasField("leaderboard"):
            raise InvalidArgument("leaderboard", "is required")
        current = await self._catalog.fresh(validate_id(request.leaderboard.id, "leaderboard.id"))
        change = board_from_proto(request.leaderboard, current)
        updated = apply_update(current, change, list(request.update_mask.paths))
        stored = await self._catalog_store.update(updated)
        if stored is None:
            raise NotFound(f"leaderboard {current.id!r} not found", reason="LEADERBOARD_NOT_FOUND")
        self._catalog.put(stored)
        await self._ranking.board_updated(current, stored)
        return ranking_pb2.UpdateLeaderboardResponse(leaderboard=board_proto(stored))

    async def DeleteLeaderboard(
        self, request: ranking_pb2.DeleteLeaderboardRequest, context: Context
    ) -> ranking_pb2.DeleteLeaderboardResponse:
        board_id = _board_id(request.leaderboard_id)
        if board_id == GLOBAL_ID:
            raise FailedPrecondition("the global leaderboard cannot be deleted", reason="GLOBAL_LEADERBOARD")
        deleted = await self._catalog_store.delete(board_id)
        self._catalog.forget(board_id)
        if deleted is None:
            raise NotFound(f"leaderboard {board_id!r} not found", reason="LEADERBOARD_NOT_FOUND")
        await self._ranking.board_deleted(deleted)
        return ranking_pb2.DeleteLeaderboardResponse()

    # --- reads ---------------------------------------------------------------------------------

    async def ListTopEntries(
        self, request: ranking_pb2.ListTopEntriesRequest, context: Context
    ) -> ranking_pb2.ListTopEntriesResponse:
        page = await self._ranking.top(
            _board_id(request.leaderboard_id),
            _window(request.window),
            request.page_size,
            request.page_token,
            _period(request),
        )
        response = ranking_pb2.ListTopEntriesResponse(next_page_token=page.next_token, total_players=page.total)
        add_entries(response.entries, page.entries)
        return response

    async def GetUserRank(
        self, request: ranking_pb2.GetUserRankRequest, context: Context
    ) -> ranking_pb2.GetUserRankResponse:
        entry, total = await self._ranking.user_rank(
            _board_id(request.leaderboard_id),
            _window(request.window),
            _user(request.user_id),
            _period(request),
        )
        response = ranking_pb2.GetUserRankResponse(total_players=total)
        fill_entry(response.entry, entry)
        return response

    async def ListEntriesAroundUser(
        self, request: ranking_pb2.ListEntriesAroundUserRequest, context: Context
    ) -> ranking_pb2.ListEntriesAroundUserResponse:
        entries, total = await self._ranking.around(
            _board_id(request.leaderboard_id),
            _window(request.window),
            _user(request.user_id),
            before=request.before,
            after=request.after,
            period_time_ms=_period(request),
        )
        response = ranking_pb2.ListEntriesAroundUserResponse(total_players=total)
        add_entries(response.entries, entries)
        return response

    async def ListEntriesForUsers(
        self, request: ranking_pb2.ListEntriesForUsersRequest, context: Context
    ) -> ranking_pb2.ListEntriesForUsersResponse:
        entries, total = await self._ranking.for_users(
            _board_id(request.leaderboard_id),
            _window(request.window),
            list(request.user_ids),
            _period(request),
        )
        response = ranking_pb2.ListEntriesForUsersResponse(total_players=total)
        add_entries(response.entries, entries)
        return response

    async def SubscribeRankUpdates(
        self, request: ranking_pb2.SubscribeRankUpdatesRequest, context: Context
    ) -> AsyncIterator[ranking_pb2.SubscribeRankUpdatesResponse]:
        raise Unimplemented("SubscribeRankUpdates is not implemented yet", reason="NOT_IMPLEMENTED")
        yield  # an async generator, as the streaming handler must be

    # --- writes ---------------------------------------------------------------------------------

    async def ApplyScores(
        self, request: ranking_pb2.ApplyScoresRequest, context: Context
    ) -> ranking_pb2.ApplyScoresResponse:
        # An unset achieved_at reads as 0 ms, which validation refuses as missing.
        events = [
            ScoreEvent(e.event_id, e.leaderboard_id, e.user_id, e.score, _ms(e.achieved_at), e.display_name)
            for e in request.events
        ]
        results = await self._ranking.apply(events)
        response = ranking_pb2.ApplyScoresResponse()
        add = response.results.add
        for r in results:
            item = add(event_id=r.event_id)
            # Set only when true: each field set costs about as much as the rest of the loop.
            if r.improved:
                item.improved = True
            if r.duplicate:
                item.duplicate = True
            if r.deferred:
                item.deferred = True
            if r.entry is not None:
                fill_entry(item.entry, r.entry)
        return response

    async def RebuildLeaderboard(
        self, request: ranking_pb2.RebuildLeaderboardRequest, context: Context
    ) -> ranking_pb2.RebuildLeaderboardResponse:
        replayed, total = await self._ranking.rebuild(_board_id(request.leaderboard_id))
        return ranking_pb2.RebuildLeaderboardResponse(events_replayed=replayed, total_players=total)

    async def SetUserHidden(
        self, request: ranking_pb2.SetUserHiddenRequest, context: Context
    ) -> ranking_pb2.SetUserHiddenResponse:
        if not request.user_id:
            raise InvalidArgument("user_id", "is required")
        await self._ranking.set_hidden(request.user_id, request.hidden)
        return ranking_pb2.SetUserHiddenResponse()
