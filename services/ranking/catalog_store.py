"""PostgreSQL access of the catalog and the hidden-player list (schema `ranking`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leaderboard.runtime.errors import AlreadyExists
from services.ranking.catalog import Board, Policy, SortOrder
from services.ranking.models import HiddenUserRow, LeaderboardRow
from services.ranking.windows import WINDOW_NAMES, WINDOWS_BY_NAME

_ORDER_NAMES = {SortOrder.DESCENDING: "desc", SortOrder.ASCENDING: "asc"}
_ORDERS = {v: k for k, v in _ORDER_NAMES.items()}
_POLICY_NAMES = {Policy.BEST: "best", Policy.LATEST: "latest", Policy.SUM: "sum"}
_POLICIES = {v: k for k, v in _POLICY_NAMES.items()}


def _board(row: LeaderboardRow) -> Board:
    return Board(
        id=row.id,
        game_id=row.game_id,
        display_name=row.display_name,
        sort_order=_ORDERS[row.sort_order],
        policy=_POLICIES[row.update_policy],
        min_score=row.min_score,
        max_score=row.max_score,
        authoritative=row.authoritative,
        windows=tuple(sorted(WINDOWS_BY_NAME[w] for w in row.windows)),
        global_weight=row.global_weight,
        retention_periods=row.retention_periods,
        create_time=row.created_at,
        update_time=row.updated_at,
    )


def _values(board: Board) -> dict[str, object]:
    return {
        "game_id": board.game_id,
        "display_name": board.display_name,
        "sort_order": _ORDER_NAMES[board.sort_order],
        "update_policy": _POLICY_NAMES[board.policy],
        "min_score": board.min_score,
        "max_score": board.max_score,
        "authoritative": board.authoritative,
        "windows": [WINDOW_NAMES[w] for w in board.windows],
        "global_weight": board.global_weight,
        "retention_periods": board.retention_periods,
    }


class CatalogStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, board_id: str) -> Board | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(LeaderboardRow).where(LeaderboardRow.id == board_id, LeaderboardRow.deleted_at.is_(None))
            )
            return None if row is None else _board(row)

    async def create(self, board: Board) -> Board:
        async with self._sessions.begin() as session:
            inserted = await session.scalar(
                insert(LeaderboardRow)
                .values(id=board.id, **_values(board))
                .on_conflict_do_nothing(index_elements=[LeaderboardRow.id])
                .returning(LeaderboardRow)
            )
            if inserted is None:
                retired = await session.scalar(select(LeaderboardRow.deleted_at).where(LeaderboardRow.id == board.id))
                detail = (
                    "was used by a deleted leaderboard whose score history is kept; ids are not reused"
                    if retired is not None
                    else "already exists"
                )
                raise AlreadyExists(
                    f"leaderboard {board.id!r} {detail}",
                    reason="LEADERBOARD_ALREADY_EXISTS",
                    metadata={"leaderboard_id": board.id},
                )
            return _board(inserted)

    async def update(self, board: Board) -> Board | None:
        async with self._sessions.begin() as session:
            row = await session.scalar(
                update(LeaderboardRow)
                .where(LeaderboardRow.id == board.id, LeaderboardRow.deleted_at.is_(None))
                .values(**_values(board), updated_at=func.now())
                .returning(LeaderboardRow)
            )
            return None if row is None else _board(row)

    async def delete(self, board_id: str) -> Board | None:
        """Retire a board (its row stays, so the id is never reused); None when absent."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                update(LeaderboardRow)
                .where(LeaderboardRow.id == board_id, LeaderboardRow.deleted_at.is_(None))
                .values(deleted_at=func.now(), updated_at=func.now())
                .returning(LeaderboardRow)
            )
            return None if row is None else _board(row)

    async def list_page(self, *, game_id: str, after_id: str, limit: int) -> list[Board]:
        query = select(LeaderboardRow).where(LeaderboardRow.deleted_at.is_(None))
        if game_id:
            query = query.where(LeaderboardRow.game_id == game_id)
        if after_id:
            query = query.where(LeaderboardRow.id > after_id)
        query = query.order_by(LeaderboardRow.id).limit(limit)
        async with self._sessions() as session:
            return [_board(row) for row in await session.scalars(query)]

    async def all(self) -> list[Board]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(LeaderboardRow).where(LeaderboardRow.deleted_at.is_(None)).order_by(LeaderboardRow.id)
            )
            return [_board(row) for row in rows]

    async def set_hidden(self, user_id: uuid.UUID, hidden: bool) -> None:
        async with self._sessions.begin() as session:
            if hidden:
                await session.execute(insert(HiddenUserRow).values(user_id=user_id).on_conflict_do_nothing())
            else:
                await session.execute(delete(HiddenUserRow).where(HiddenUserRow.user_id == user_id))

    async def hidden_users(self) -> Sequence[uuid.UUID]:
        async with self._sessions() as session:
            return list(await session.scalars(select(HiddenUserRow.user_id)))
