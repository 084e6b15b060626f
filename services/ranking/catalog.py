"""The leaderboards catalog: definitions, their validation, and an in-process cache.

Definitions live in PostgreSQL (catalog_store.py). Every replica caches them
for `ranking_catalog_cache_seconds` (negative answers for at most one second),
so a change made on one replica reaches the others within that time; the
replica that made it sees it at once. Hot paths never query PostgreSQL.
"""

from __future__ import annotations

import asyncio
import enum
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from leaderboard.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from services.ranking.windows import Window

MAX_ABS_SCORE = 2**53
GLOBAL_ID = "global"
ID_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
MAX_DISPLAY_NAME = 128
MAX_RETENTION_PERIODS = 1000
MAX_WEIGHT = 1e6
NEGATIVE_CACHE_SECONDS = 1.0


class SortOrder(enum.IntEnum):
    """Same numbers as leaderboard.v1.SortOrder."""

    DESCENDING = 1
    ASCENDING = 2


class Policy(enum.IntEnum):
    """Same numbers as leaderboard.v1.UpdatePolicy."""

    BEST = 1
    LATEST = 2
    SUM = 3


@dataclass(frozen=True, slots=True)
class Board:
    """A leaderboard definition."""

    id: str
    game_id: str
    display_name: str
    sort_order: SortOrder
    policy: Policy
    min_score: int | None
    max_score: int | None
    authoritative: bool
    windows: tuple[Window, ...]  # besides all-time, in enum order
    global_weight: float
    retention_periods: int  # 0 = server default
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def is_global(self) -> bool:
        return self.id == GLOBAL_ID

    @property
    def descending(self) -> bool:
        return self.sort_order is SortOrder.DESCENDING

    def keeps(self, window: Window) -> bool:
        return window is Window.ALL_TIME or window in self.windows


# Fields UpdateLeaderboard may change (update_mask paths) and those it may not.
MUTABLE_FIELDS = (
    "display_name",
    "game_id",
    "min_score",
    "max_score",
    "authoritative",
    "windows",
    "global_weight",
    "retention_periods",
)
# Changing how scores combine or rank would leave the live sets meaningless.
IMMUTABLE_FIELDS = ("id", "sort_order", "update_policy")
GLOBAL_MUTABLE_FIELDS = ("display_name",)


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def validate_id(value: str, field: str = "leaderboard_id") -> str:
    if not ID_PATTERN.fullmatch(value):
        raise InvalidArgument(field, "must be 1-64 characters of a-z, 0-9, '_' or '-'")
    return value


def validate_score(value: int, field: str) -> int:
    if not -MAX_ABS_SCORE <= value <= MAX_ABS_SCORE:
        raise InvalidArgument(field, "must be within +-2^53 (9007199254740992)")
    return value


def validate_board(board: Board, prefix: str = "leaderboard") -> Board:
    """Check every field of a definition; returns it with defaults applied."""
    validate_id(board.id, _field(prefix, "id"))
    if board.game_id and not ID_PATTERN.fullmatch(board.game_id):
        raise InvalidArgument(_field(prefix, "game_id"), "must be 1-64 characters of a-z, 0-9, '_' or '-'")
    if not board.is_global and not board.game_id:
        raise InvalidArgument(_field(prefix, "game_id"), "is required")
    display_name = board.display_name.strip() or board.id
    if len(display_name) > MAX_DISPLAY_NAME or not display_name.isprintable():
        raise InvalidArgument(_field(prefix, "display_name"), "must be at most 128 printable characters")
    for name in ("min_score", "max_score"):
        value = getattr(board, name)
        if value is not None:
            validate_score(value, _field(prefix, name))
    low = -MAX_ABS_SCORE if board.min_score is None else board.min_score
    high = MAX_ABS_SCORE if board.max_score is None else board.max_score
    if low > high:
        raise InvalidArgument(_field(prefix, "min_score"), "must not exceed max_score")
    weight = board.global_weight
    if not math.isfinite(weight) or weight < 0 or weight > MAX_WEIGHT:
        raise InvalidArgument(_field(prefix, "global_weight"), "must be a number from 0 to 1e6")
    if not 0 <= board.retention_periods <= MAX_RETENTION_PERIODS:
        raise InvalidArgument(_field(prefix, "retention_periods"), "must be from 0 to 1000")
    return replace(board, display_name=display_name)


def parse_windows(values: Sequence[int], field: str) -> tuple[Window, ...]:
    """Proto window numbers -> the kept windows besides all-time (ALL_TIME is implied)."""
    kept: set[Window] = set()
    for index, value in enumerate(values):
        try:
            window = Window(value)
        except ValueError:
            raise InvalidArgument(f"{field}[{index}]", "unknown window") from None
        if window is not Window.ALL_TIME:
            kept.add(window)
    return tuple(sorted(kept))


def apply_update(current: Board, change: Board, paths: Sequence[str]) -> Board:
    """The definition after UpdateLeaderboard; `paths` empty = every mutable field.

    Immutable fields (id, sort order, update policy; everything but the display
    name of `global`) may appear in the mask or the message only unchanged.
    """
    allowed = GLOBAL_MUTABLE_FIELDS if current.is_global else MUTABLE_FIELDS
    checked = list(paths) or [*allowed, "sort_order", "update_policy"]
    updates: dict[str, object] = {}
    for path in checked:
        if path in allowed:
            updates[path] = getattr(change, path)
        elif path in ("create_time", "update_time"):
            raise InvalidArgument("update_mask", f"{path} is output only")
        elif path in IMMUTABLE_FIELDS or path in MUTABLE_FIELDS:
            attr = "policy" if path == "update_policy" else path
            if getattr(change, attr) != getattr(current, attr):
                why = "the global leaderboard is derived" if current.is_global else "create a new leaderboard"
                raise InvalidArgument("update_mask" if paths else "leaderboard." + path, f"cannot change ({why})")
        else:
            raise InvalidArgument("update_mask", f"unknown field {path!r}")
    return validate_board(replace(current, **updates))  # type: ignore[arg-type]


@dataclass(slots=True)
class _Cached:
    board: Board | None
    expires: float


class CatalogCache:
    """Definitions by id, cached per process. `get` is the hot path: a dict lookup."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[Board | None]],
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Future[Board | None]] = {}

    async def find(self, board_id: str) -> Board | None:
        entry = self._entries.get(board_id)
        if entry is not None and entry.expires > self._clock():
            return entry.board
        return await self._refresh(board_id)

    async def get(self, board_id: str) -> Board:
        board = await self.find(board_id)
        if board is None:
            raise NotFound(f"leaderboard {board_id!r} not found", reason="LEADERBOARD_NOT_FOUND")
        return board

    async def fresh(self, board_id: str) -> Board:
        """Bypass the cache (writes and rebuilds decide on the stored definition)."""
        self._entries.pop(board_id, None)
        return await self.get(board_id)

    def put(self, board: Board) -> None:
        self._entries[board.id] = _Cached(board, self._clock() + self._ttl)

    def forget(self, board_id: str) -> None:
        self._entries.pop(board_id, None)

    async def _refresh(self, board_id: str) -> Board | None:
        # One load per id at a time: a burst of misses shares it.
        pending = self._loading.get(board_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Board | None] = asyncio.get_running_loop().create_future()
        self._loading[board_id] = future
        try:
            board = await self._load(board_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it
            raise
        finally:
            self._loading.pop(board_id, None)
        ttl = self._ttl if board is not None else min(self._ttl, NEGATIVE_CACHE_SECONDS)
        self._entries[board_id] = _Cached(board, self._clock() + ttl)
        future.set_result(board)
        return board


def require_not_global(board: Board, field: str) -> None:
    if board.is_global:
        raise FailedPrecondition(
            f"{field}: the global leaderboard is derived from the others", reason="GLOBAL_LEADERBOARD"
        )
